"""`mesh materialize`: the selected products, a real Dagster run per code location, locations in
lineage order. A product that fails or is blocked stops only what reads it (directly or through
others); everything else still runs. One line per product as it starts and ends, then a summary
as dbt prints it: PASS, WARN (published, a non-blocking check failed), BLOCKED (a blocking check
failed: the previous version stays current), ERROR, SKIP (an upstream did not publish).

With a UI running for the home (`mesh ui`), the runs are launched through it (see
mesh_platform.ui_launch), each once the products it reads have ended; otherwise this process
executes them. A product that another run is building (queued or in progress: the landing
sensor's, automation's, someone's in the UI) or built since the refresh began is not built twice:
its outcome is that run's. Without a UI, the
runs of locations that read nothing of each other's go side by side in forks of this process
when their landing data are small (mesh_platform.location_waves, mesh_platform.side_by_side).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.text import Text

from mesh_platform import location_waves, short_process, side_by_side
from mesh_platform.deployment import Settings
from mesh_platform.executor import PRELOAD
from mesh_platform.registry import location_order
from mesh_platform.runs import IN_PROGRESS, fail_orphaned_runs, runs_building
from mesh_platform.selection import products_by_location
from mesh_platform.ui_launch import LaunchError, RunningUI
from mesh_platform.workspace import materialize, run_tags

STATUSES = ("PASS", "WARN", "BLOCKED", "ERROR", "SKIP")
STYLE = {"PASS": "green", "WARN": "yellow", "BLOCKED": "red", "ERROR": "bold red", "SKIP": "dim"}
INVOCATION_TAG = "mesh/invocation"  # finds the run `materialize` is executing, to follow its events
_FOLLOWED = {
    dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_SKIPPED, dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
}
# With no UI running, the states in which another launcher's run is followed rather than building
# its products again: without a UI's daemon, a queued run may never start.
RUNNING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
# A run of these ended since the refresh began: its outcome is theirs (not one stopped by someone).
ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]


@dataclass
class Outcome:
    key: str
    status: str = "SKIP"
    rows: int | None = None
    seconds: float | None = None
    message: str = ""


@dataclass
class Refresh:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    interrupted: bool = False  # a Ctrl-C ended it (through a UI: its runs terminated and reported)

    def counts(self) -> dict[str, int]:
        return {s: sum(o.status == s for o in self.outcomes.values()) for s in STATUSES}

    @property
    def ok(self) -> bool:
        return all(o.status in ("PASS", "WARN") for o in self.outcomes.values())

    def summary(self) -> str:
        return " ".join(f"{s}={n}" for s, n in self.counts().items())


def refresh(
    plan: dict[str, list[dg.AssetKey] | None], instance: dg.DagsterInstance, *, in_process: bool,
    tags: dict[str, str], console: Console, run_config: dict | None = None, log_file: Path | None = None,
    ui: RunningUI | None = None, links: bool = False,
) -> Refresh:
    """Run `plan` (location -> its selected products, None for all of them), through `ui` when
    given (with `links`, each run's page is shown). With `log_file`, what the runs' processes
    write to stderr (Dagster's own lines) goes there instead."""
    products = products_by_location(list(plan))
    upstream = {k: {d.asset_key for d in a.specs_by_key[k].deps} for by_key in products.values() for k, a in by_key.items()}
    done = Refresh()
    failed: set[dg.AssetKey] = set()
    width = max(len(k.to_user_string()) for by_key in products.values() for k in by_key)
    show = _printer(console, width)

    def runnable(keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
        """`keys` but those with an input that did not publish (reported as skipped)."""
        kept = []
        for key in keys:
            broken = sorted(k.to_user_string() for k in upstream[key] & failed)
            if broken:
                failed.add(key)
                outcome = done.outcomes[key.to_user_string()] = Outcome(
                    key.to_user_string(), message=f"not run: its input {', '.join(broken)} did not publish")
                show(outcome)
            else:
                kept.append(key)
        return kept

    def record(outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            done.outcomes[outcome.key] = outcome
            if outcome.status not in ("PASS", "WARN"):
                failed.add(dg.AssetKey(outcome.key.split("/")))

    # Another launcher's runs of the products: in progress now, or since this refresh began.
    began = datetime.now(timezone.utc)
    every = [k for by_key in products.values() for k in by_key]
    running_then = list(runs_building(instance, every, IN_PROGRESS))
    order = location_order(list(plan))
    selected = {loc: plan[loc] if plan[loc] is not None else sorted(products[loc], key=lambda k: k.to_user_string())
                for loc in order}

    def others(keys: list[dg.AssetKey]) -> dict[str, list[dg.AssetKey]]:
        """Another launcher's runs of `keys` whose outcome is theirs: run id -> its keys."""
        found = {**runs_building(instance, keys, ENDED, run_ids=running_then),
                 **runs_building(instance, keys, ENDED, created_after=began),
                 **runs_building(instance, keys, IN_PROGRESS if ui else RUNNING)}
        left = {run_id: [k for k in theirs if k.to_user_string() not in done.outcomes] for run_id, theirs in found.items()}
        return {run_id: theirs for run_id, theirs in left.items() if theirs}

    def unbuilt(location: str) -> list[dg.AssetKey]:
        """The location's products to run now: those not skipped, nor built by another run."""
        keys = runnable(selected[location])
        for run_id, theirs in others(keys).items():
            record(_await(run_id, theirs, instance, show))
        return runnable([k for k in keys if k.to_user_string() not in done.outcomes])

    def as_inputs_publish() -> None:
        """Through a UI: each location's run is launched once the products it reads from other runs
        have ended, not once every earlier location's run has (customer_360 need not wait for
        customer/insights), and the runs are followed together: what runs at once is the UI
        queue's to decide, within its concurrency limits. A location's products are looked at
        just before its run, as in `unbuilt`: another launcher's run of them is followed instead."""
        todo = {k for location in order for k in selected[location]}
        waiting, examined, claimed = list(order), set(), set()
        watches: list[_Watch] = []

        def pending(keys, besides) -> bool:
            """Whether an input of `keys` other than `besides` is in this refresh without an outcome."""
            return any(u in todo and u not in besides and u.to_user_string() not in done.outcomes
                       for k in keys for u in upstream[k])

        try:
            for _ in _polling(instance):
                launched = False
                for location in list(waiting):
                    keys = [k for k in selected[location] if k.to_user_string() not in done.outcomes]
                    # Nothing in flight: locations that read each other's products (no order) go in
                    # the order given instead of waiting for each other.
                    busy = bool(watches) or launched
                    if location not in examined:
                        if busy and pending(keys, besides=keys):
                            continue
                        examined.add(location)
                        for run_id, theirs in others(runnable(keys)).items():
                            watches.append(_Watch(run_id, theirs, instance=instance, show=show, ui=ui, note=True))
                            claimed.update(theirs)
                    own = [k for k in keys if k not in claimed and k.to_user_string() not in done.outcomes]
                    if busy and pending(own, besides=own):
                        continue
                    waiting.remove(location)
                    if own := runnable(own):
                        started = _launch(location, own, instance, in_process, tags, show, ui, links)
                        if isinstance(started, list):
                            record(started)
                        else:
                            watches.append(started)
                            launched = True
                for watch in [w for w in watches if w.ended()]:
                    watches.remove(watch)
                    record(watch.outcomes())
                if not waiting and not watches:
                    return
        except KeyboardInterrupt:
            stopped(watches)
            done.interrupted = True

    def stopped(watches: list[_Watch]) -> None:
        """After a Ctrl-C, as without a UI: the runs this refresh launched are terminated and
        reported as they end (a second Ctrl-C leaves at once), what it did not launch is skipped."""
        ours = [w for w in watches if not w.note]
        for watch in ours:
            watch.stop()
        for _ in _polling(instance):
            for watch in [w for w in ours if w.ended()]:
                ours.remove(watch)
                record(watch.outcomes())
            if not ours:
                break
        going_on = {key: w.run_id for w in watches if w.note for key in w.follower.outcomes}
        for location in order:
            for key in (k.to_user_string() for k in selected[location]):
                if key not in done.outcomes:
                    outcome = Outcome(key, message=f"not followed: the refresh was stopped; run {going_on[key][:8]} "
                                      "goes on building it" if key in going_on else "not run: the refresh was stopped")
                    record([outcome])
                    show(outcome)

    if ui is not None:
        as_inputs_publish()
        return done
    settings = Settings.from_env()
    for wave in location_waves.waves(order, selected, upstream):
        # Forks copy only the thread that forks: a process running others (a test session's
        # servers, a caller's pool) keeps one location at a time.
        if threading.active_count() == 1 and location_waves.together(wave, settings):
            ready = [(location, keys) for location in wave if (keys := unbuilt(location))]
            if len(ready) > 1:
                with _stderr_to(log_file):
                    for outcomes in _side_by_side(ready, instance, in_process, tags, run_config, show):
                        record(outcomes)
                continue
            pending = [(location, lambda keys=keys: keys) for location, keys in ready]
        else:  # each location's products looked at just before its run: another may build them meanwhile
            pending = [(location, functools.partial(unbuilt, location)) for location in wave]
        for location, products_now in pending:
            keys = products_now()
            if keys:
                short_process.settle()
                with _stderr_to(log_file):
                    record(_run(location, keys, instance, in_process, tags, run_config, show))
    return done


@contextlib.contextmanager
def _stderr_to(path: Path | None) -> Iterator[None]:
    """File descriptor 2 of this process, and so of the step processes it starts, into `path`."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    try:
        with open(path, "a") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _printer(console: Console, width: int) -> Callable[..., None]:
    def show(outcome: Outcome | None = None, started: str | None = None, note: str | None = None) -> None:
        if note:
            console.print(f"  [dim]{note}[/]", highlight=False)
            return
        if started:
            console.print(f"  {started:<{width}}  [dim]started[/]")
            return
        detail = [f"{outcome.rows:,} rows" if outcome.rows is not None else "",
                  f"{outcome.seconds:.1f}s" if outcome.seconds is not None else ""]
        line = f"  {outcome.key:<{width}}  [{STYLE[outcome.status]}]{outcome.status:<7}[/] " + "  ".join(d for d in detail if d)
        text = Text.from_markup(line.rstrip())
        if outcome.message:
            text.append("\n    " + outcome.message.replace("\n", "\n    "), style=STYLE[outcome.status])
        # One print is one write: side-by-side forks share the terminal, and a product's message
        # must stay under its own line.
        console.print(text, highlight=False)

    return show


def _launch(location, keys, instance, in_process, tags, show, ui, links) -> _Watch | list[Outcome]:
    """A run of `keys` launched through the UI, to follow; its products' errors if it was not."""
    tags = {**run_tags(location, in_process), **tags}
    try:
        run_id = ui.launch(location, keys, tags)
    except LaunchError as exc:
        outcomes = [Outcome(k.to_user_string(), "ERROR", message=str(exc)) for k in keys]
        for outcome in outcomes:
            show(outcome)
        return outcomes
    if links:
        show(note=f"{location}: run {run_id[:8]}, its log: {ui.run_url(run_id)}")
    return _Watch(run_id, keys, instance=instance, show=show, ui=ui)


def _run(location, keys, instance, in_process, tags, run_config, show) -> list[Outcome]:
    """One run of `keys` this process executes, followed from its event log while it runs."""
    invocation = uuid.uuid4().hex
    outcomes = {k.to_user_string(): Outcome(k.to_user_string()) for k in keys}
    follower = _Follower(instance, outcomes, show, invocation=invocation)
    thread = threading.Thread(target=follower.follow, daemon=True)
    thread.start()
    try:
        # Dagster installs its signal handlers for the run: only the main thread may.
        materialize(location, instance, in_process, {**tags, INVOCATION_TAG: invocation}, keys, run_config=run_config)
    finally:
        follower.stop.set()
        thread.join()
    follower.drain()  # what the last poll missed
    return follower.finish(instance.get_run_by_id(follower.run_id) if follower.run_id else None, None)


def _side_by_side(ready, instance, in_process, tags, run_config, show) -> list[list[Outcome]]:
    """The runs of independent locations, each in a fork of this process (mesh_platform.side_by_side)."""
    for module in PRELOAD:  # what every run's first product loads: once, before the forks
        importlib.import_module(module)
    short_process.settle()
    results = side_by_side.run({
        location: functools.partial(_run, location, keys, instance, in_process, tags, run_config, show)
        for location, keys in ready
    })
    if any(isinstance(r, side_by_side.JobFailed) for r in results.values()):
        # A fork that died (killed, out of memory) could not end its run: marked failed now, not
        # left STARTED in the UI until the next command or the run monitor sees it.
        fail_orphaned_runs(instance)
    ended = []
    for location, keys in ready:
        outcomes = results[location]
        if isinstance(outcomes, side_by_side.JobFailed):
            outcomes = [Outcome(k.to_user_string(), "ERROR", message=f"the run of {location} failed: {outcomes}")
                        for k in keys]
            for outcome in outcomes:
                show(outcome)
        ended.append(outcomes)
    return ended


class _Watch:
    """Run `run_id` (launched through the UI, or by someone else with `note`) followed to its end
    for the outcomes of `keys`. Stopping terminates a run this refresh launched."""

    def __init__(self, run_id: str, keys, *, instance, show, ui, note: bool = False):
        self.run_id, self.instance, self.ui, self.note = run_id, instance, ui, note
        self.follower = _Follower(instance, {k.to_user_string(): Outcome(k.to_user_string()) for k in keys}, show,
                                  run_id=run_id)
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise LaunchError(f"the UI on {ui.url} launched run {run_id}, but this mesh home's Dagster instance "
                              f"({instance.root_directory}) has no such run: that UI serves another home")
        if note:
            by = run.tags.get("mesh/trigger") or run.tags.get("dagster/sensor_name") or "launched elsewhere"
            keys = ", ".join(self.follower.outcomes)
            show(note=f"{keys}: built by run {run_id[:8]} ({by}) since this refresh began" if run.is_finished
                 else f"{keys}: already being built by run {run_id[:8]} ({by}); following it")
        self.run: dg.DagsterRun | None = None

    def ended(self) -> bool:
        """Whether the run has ended, its events so far shown."""
        self.follower.drain()
        run = self.instance.get_run_by_id(self.run_id)
        if run.is_finished:
            self.follower.drain()
            self.run = run
        return self.run is not None

    def outcomes(self) -> list[Outcome]:
        return self.follower.finish(self.run, self.ui)

    def stop(self) -> None:
        if self.ui is not None and not self.note:
            self.ui.terminate(self.run_id)


def _await(run_id: str, keys, instance, show) -> list[Outcome]:
    """The outcomes of `keys` once another launcher's run `run_id` ended (see _Watch)."""
    watch = _Watch(run_id, keys, instance=instance, show=show, ui=None, note=True)
    for _ in _polling(instance):
        if watch.ended():
            return watch.outcomes()


def _polling(instance) -> Iterator[None]:
    """The beat of a loop following runs to their end: every 0.25 s, and every 10 s a run whose
    worker died is marked failed, so that no loop awaits it forever."""
    for polls in itertools.count(1):
        yield
        if polls % 40 == 0:
            fail_orphaned_runs(instance)
        time.sleep(0.25)


class _Follower:
    """The outcomes of a run's products, from its event log: the run `run_id`, or the run tagged
    with `invocation` once it exists."""

    def __init__(self, instance, outcomes: dict[str, Outcome], show, invocation: str | None = None,
                 run_id: str | None = None):
        self.instance, self.invocation, self.outcomes, self.show = instance, invocation, outcomes, show
        self.stop = threading.Event()
        self.run_id = run_id
        self.cursor: str | None = None
        self.started: dict[str, float] = {}
        self.checks_failed: dict[str, list[str]] = {}
        self.reported: set[str] = set()

    def follow(self) -> None:
        # Beside a run this process executes, only its progress lines wait for a poll: each costs
        # the run a SQLite connection and a query (every 0.25 s: 0.4 s of a refresh at 100k).
        while not self.stop.wait(1.0):
            self.drain()

    def drain(self) -> None:
        if self.run_id is None:
            runs = self.instance.get_run_records(dg.RunsFilter(tags={INVOCATION_TAG: self.invocation}), limit=1)
            if not runs:
                return
            self.run_id = runs[0].dagster_run.run_id
        while True:
            page = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, of_type=_FOLLOWED, limit=500)
            for record in page.records:
                self._event(record.event_log_entry)
            self.cursor = page.cursor
            if not page.has_more:
                return

    def finish(self, run: dg.DagsterRun | None, ui: RunningUI | None) -> list[Outcome]:
        """The outcomes once the run ended; a product it never reached is skipped when another
        step failed, and an error when the run itself failed (or was stopped) first."""
        step_failed = any(o.status in ("BLOCKED", "ERROR") for o in self.outcomes.values())
        for outcome in self.outcomes.values():
            if outcome.key in self.reported:
                continue
            if step_failed or run is None or run.status == dg.DagsterRunStatus.SUCCESS:
                outcome.message = "not run: an input in the same run did not publish"
            else:
                outcome.status = "ERROR"
                where = ui.run_url(run.run_id) if ui is not None else f"run {run.run_id} in the UI"
                outcome.message = f"the run ended {run.status.value} before this product ran (its log: {where})"
            self._report(outcome, None)
        return list(self.outcomes.values())

    def _event(self, entry) -> None:
        event = entry.dagster_event
        kind = event.event_type
        key = _key_of(event.step_key) if event.step_key else None
        if kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                self.checks_failed.setdefault(evaluation.asset_key.to_user_string(), []).append(evaluation.check_name)
            return
        if key not in self.outcomes:
            return
        outcome = self.outcomes[key]
        if kind == dg.DagsterEventType.STEP_START:
            self.started[key] = entry.timestamp
            self.show(started=key)
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            rows = event.event_specific_data.materialization.metadata.get("dagster/row_count")
            outcome.rows = rows.value if rows is not None else None
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            failed = self.checks_failed.get(key)
            outcome.status = "WARN" if failed else "PASS"
            outcome.message = f"non-blocking checks failed: {', '.join(failed)}" if failed else ""
            self._report(outcome, entry.timestamp)
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            blocked = data.user_failure_data is not None and "failed_checks" in (data.user_failure_data.metadata or {})
            outcome.status = "BLOCKED" if blocked else "ERROR"
            outcome.message = _failure_message(data)
            self._report(outcome, entry.timestamp)
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            outcome.message = "not run: an input in the same run did not publish"
            self._report(outcome, None)

    def _report(self, outcome: Outcome, at: float | None) -> None:
        if outcome.key in self.reported:
            return
        self.reported.add(outcome.key)
        if at is not None and outcome.key in self.started:
            outcome.seconds = at - self.started[outcome.key]
        self.show(outcome)


# A step a Ctrl-C or a terminate of its run ended. Whether its version was committed before the
# stop landed, `mesh status` says.
STOPPED = "stopped before its step ended (a Ctrl-C, or its run terminated)"


def _key_of(step_key: str) -> str:
    return step_key.replace("__", "/")


def _failure_message(data) -> str:
    """A failure the platform raised on purpose (dg.Failure: blocked, source, access) says all
    in its description; anything else is a bug or an outage: its message, and where the rest is."""
    error = data.error
    if data.user_failure_data is not None:
        return data.user_failure_data.description or error.message.strip()
    while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    if error.cls_name == "DagsterExecutionInterruptedError":  # Dagster's text names only the class
        return STOPPED
    return f"{error.cls_name}: {error.message.strip()} (the traceback: `mesh materialize -v`, or the run in the UI)"

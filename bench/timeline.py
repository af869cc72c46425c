"""Where a mesh refresh's wall time goes, from the event log of the instance it ran in: before
its first run (Python, Dagster and its instance, the selection), in its runs, between them and
after; and, summed over the runs, Dagster's part outside the steps against the steps' own: the
products' computation, their contract checks and their commits (as each step's materialization
metadata times them), and the rest of the steps (mostly Dagster recording their events)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PRODUCT_TIMINGS = ("compute_s", "audit_s", "publish_s")  # what publish records on a materialization


@dataclass(frozen=True)
class RunSpan:
    created: float  # epoch seconds
    ended: float
    steps: list[tuple[float, float]]  # each step's (start, end)
    events: int
    timings: dict[str, float] = field(default_factory=dict)  # PRODUCT_TIMINGS summed over its steps


def breakdown(started: float, wall: float, runs: list[RunSpan]) -> dict[str, float]:
    """The refresh's seconds by phase. The first three add up to `wall`: runs side by side count
    once there. The rest are sums over the runs, so side-by-side runs can add up to more."""
    end = started + wall
    spans = [(max(r.created, started), min(r.ended, end)) for r in runs]
    in_runs = _union(spans)
    before = (min(s for s, _ in spans) - started) if spans else wall
    in_steps = sum(_union(r.steps) for r in runs)
    timed = {k: sum(r.timings.get(k, 0.0) for r in runs) for k in PRODUCT_TIMINGS}
    return {
        "before_runs_s": before,
        "in_runs_s": in_runs,
        "between_and_after_runs_s": wall - before - in_runs,
        "runs": len(runs),
        "dagster_outside_steps_s": sum(r.ended - r.created for r in runs) - in_steps,
        **timed,
        "step_platform_s": in_steps - sum(timed.values()),
        "events": sum(r.events for r in runs),
    }


def _union(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of intervals."""
    total, reach = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= reach:
            continue
        total += stop - max(start, reach)
        reach = stop
    return total


def refresh_timeline(dagster_home: Path, started: float, wall: float) -> dict[str, float]:
    """`breakdown` of the refresh whose runs are every run in the instance at `dagster_home`."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        return breakdown(started, wall, [_span(instance, record) for record in instance.get_run_records()])
    finally:
        instance.dispose()


def step_pairs(entries) -> list[tuple[str, object, object]]:
    """Each step in a run's event log entries: (its key, its STEP_START entry, its end's entry)."""
    import dagster as dg

    opened, pairs = {}, []
    for entry in entries:
        kind = entry.dagster_event.event_type if entry.dagster_event else None
        if kind == dg.DagsterEventType.STEP_START:
            opened[entry.step_key] = entry
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            pairs.append((entry.step_key, opened.pop(entry.step_key), entry))
    return pairs


def _span(instance, record) -> RunSpan:
    import dagster as dg

    events = instance.all_logs(record.dagster_run.run_id)
    timings = {}
    for entry in events:
        if entry.dagster_event and entry.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            metadata = entry.dagster_event.event_specific_data.materialization.metadata
            for key in PRODUCT_TIMINGS:
                if key in metadata:
                    timings[key] = timings.get(key, 0.0) + metadata[key].value
    steps = [(start.timestamp, end.timestamp) for _, start, end in step_pairs(events)]
    return RunSpan(record.create_timestamp.timestamp(), events[-1].timestamp, steps, len(events), timings)

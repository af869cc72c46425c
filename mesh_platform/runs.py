"""The Dagster instance the mesh creates, and runs whose worker died.

A run whose process is killed (kill -9, a crash, the machine's OOM killer) never reports its end
and would stay STARTED forever. Dagster's run monitoring is on in the instance the mesh writes,
but for runs of the default run launcher (what `dagster dev` and `mesh materialize` use)
Dagster cannot check the worker's health (`supports_check_run_worker_health` is False there):
it only enforces start and cancel timeouts. So the mesh checks itself: a STARTED run started on
this host whose worker process (the pid of its RUN_START event) is gone is marked failed. The
platform's `run_monitor` sensor does this every 30 s, and `mesh` does it before it starts runs.

Runs go through Dagster's queued run coordinator: at most MESH_MAX_CONCURRENT_RUNS in progress,
and at most MESH_DOMAIN_RUN_LIMIT per domain, counted by the `mesh/domain` tag that every product
run carries (the location's jobs and automation, and `mesh`'s own runs). The daemon launches
what the queue lets through. With MESH_INSTANCE=postgres, runs, event log and schedules live in
PostgreSQL; the config names the variable MESH_POSTGRES_URL, never its value.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from mesh_platform.deployment import Settings

HOST_TAG = "mesh/host"  # where the run's worker runs: only there can its pid be checked
# Dagster's label of the code location a run belongs to ("<repository>@<location>"): the UI lists
# a job's runs by it. Runs launched through a code server get it from Dagster; `mesh` sets it on
# the runs it executes itself, so they show under their location's job too.
LOCATION_LABEL_TAG = ".dagster/repository"
REPOSITORY = "__repository__"  # the repository name Dagster gives a location's Definitions
DOMAIN_TAG = "mesh/domain"  # the domain (code location) a run belongs to: the queue's per-domain limit
MANAGED = "# Written by mesh (mesh_platform/runs.py). Delete this line to manage the file yourself.\n"
INSTANCE_YAML = MANAGED + """\
telemetry:
  enabled: false
nux:
  enabled: false
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  poll_interval_seconds: 30
run_queue:
  dequeue_interval_seconds: 1
  # A run dequeued while its code server restarts (a deploy), or before the daemon's view of the
  # workspace caught up (it refreshes every 60 s), goes back in the queue instead of failing.
  max_user_code_failure_retries: 12
  user_code_failure_retry_delay: 10
concurrency:
  runs:
    max_concurrent_runs: {max_runs}
    tag_concurrency_limits:
      - key: {domain_tag}
        value:
          applyLimitPerUniqueValue: true
        limit: {domain_limit}
"""
POSTGRES_YAML = """\
storage:
  postgres:
    postgres_url:
      env: {variable}
"""


def instance_yaml(settings: Settings | None = None) -> str:
    """The dagster.yaml the mesh writes for `settings` (default: the environment's)."""
    from mesh_platform.deployment import POSTGRES_URL, Settings

    s = settings or Settings.from_env()
    text = INSTANCE_YAML.format(max_runs=s.max_concurrent_runs, domain_tag=DOMAIN_TAG, domain_limit=s.domain_run_limit)
    if s.instance == "postgres":
        text += POSTGRES_YAML.format(variable=POSTGRES_URL)
    return text


def write_instance_config(dagster_home: Path, settings: Settings | None = None) -> None:
    """dagster.yaml for the mesh's instance, unless someone manages the file themselves."""
    wanted = instance_yaml(settings)
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    current = config.read_text() if config.exists() else None
    if current is None or (current.startswith(MANAGED) and current != wanted):
        tmp = config.with_suffix(f".yaml.{os.getpid()}.tmp")  # several processes may write at once
        tmp.write_text(wanted)
        tmp.replace(config)


def this_host() -> str:
    return socket.gethostname()


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every STARTED run of this host whose worker process is gone; their ids."""
    import psutil

    failed = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        if run.tags.get(HOST_TAG) != this_host():
            continue
        started = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
        if not started:
            continue
        pid = started[0].event_log_entry.dagster_event.pid
        try:
            # The same pid may have been given to a newer process since.
            alive = psutil.Process(pid).create_time() <= started[0].event_log_entry.timestamp + 1
        except psutil.NoSuchProcess:
            alive = False
        if not alive:
            instance.report_run_failed(
                run, f"The run's worker process (pid {pid}) is gone: it was killed or crashed. "
                "Marked failed by the mesh's run monitor; whatever it had not committed was not published."
            )
            failed.append(run.run_id)
    return failed


@dg.sensor(
    name="run_monitor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs failed whose worker process died (killed or crashed) instead of leaving them STARTED.",
)
def run_monitor(context: dg.SensorEvaluationContext):
    failed = fail_orphaned_runs(context.instance)
    return dg.SkipReason(f"marked {len(failed)} orphaned runs failed: {failed}" if failed else "no orphaned runs")


IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]


def runs_building(instance: dg.DagsterInstance, keys, statuses=IN_PROGRESS, created_after: datetime | None = None,
                  run_ids: list[str] | None = None) -> dict[str, list[dg.AssetKey]]:
    """The runs in `statuses` (default: queued or in progress), created after `created_after` and
    among `run_ids` if given, that build any of `keys`: run id -> those of `keys` it builds,
    oldest run first, whoever launched it (a sensor, automation, the UI, `mesh`)."""
    if run_ids is not None and not run_ids:
        return {}
    wanted, found = set(keys), {}
    records = instance.get_run_records(
        dg.RunsFilter(statuses=statuses, created_after=created_after, run_ids=run_ids),
        order_by="create_timestamp", ascending=True)
    for record in records:
        run = record.dagster_run
        if run.asset_selection is not None:
            targets = run.asset_selection
        elif run.execution_plan_snapshot_id is None:
            continue
        else:  # the whole job: its steps are its products (step key: the key's parts joined by "__")
            plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            targets = {dg.AssetKey(step.key.split("__")) for step in plan.steps}
        if theirs := sorted(wanted & set(targets), key=lambda k: k.to_user_string()):
            found[run.run_id] = theirs
    return found

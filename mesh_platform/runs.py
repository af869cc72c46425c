"""The Dagster instance the mesh creates, and runs whose worker died.

A run whose process is killed (kill -9, a crash, the machine's OOM killer) never reports its end
and would stay STARTED forever. Dagster's run monitoring is on in the instance the mesh writes,
but for runs of the default run launcher (what `dagster dev` and `mesh materialize` use)
Dagster cannot check the worker's health (`supports_check_run_worker_health` is False there):
it only enforces start and cancel timeouts. So the mesh checks itself: a STARTED run started on
this host whose worker process (the pid of its RUN_START event) is gone is marked failed. The
platform's `run_monitor` sensor does this every 30 s, and `mesh` does it before it starts runs.
"""

from __future__ import annotations

import socket
from pathlib import Path

import dagster as dg

HOST_TAG = "mesh/host"  # where the run's worker runs: only there can its pid be checked
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
"""


def write_instance_config(dagster_home: Path) -> None:
    """dagster.yaml for the mesh's instance, unless someone manages the file themselves."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    current = config.read_text() if config.exists() else None
    if current is None or (current.startswith(MANAGED) and current != INSTANCE_YAML):
        tmp = config.with_suffix(".yaml.tmp")
        tmp.write_text(INSTANCE_YAML)
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

"""Run the usual way's job as Dagster runs it from the UI, and time its steps.

    python -m bench.usual --landing L --out O [--in-process]

Writes O/usual.duckdb (the I/O manager's database), O/dagster (the instance: runs, event log)
and O/steps.json ({step key: seconds from STEP_START to STEP_SUCCESS/FAILURE}); exits 1 with
the failures when the run fails. Multiprocess executor (one process per step) unless
--in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.usual", description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--in-process", action="store_true", help="in-process executor")
    args = parser.parse_args()

    out = args.out.resolve()
    home = out / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    db = out / "usual.duckdb"
    # A fresh database: the I/O manager appends into an existing table, keeping its old types.
    db.unlink(missing_ok=True)
    # Read by definitions.py and by every step process, which inherits the environment.
    os.environ.update(
        BENCH_LANDING=str(args.landing.resolve()),
        BENCH_USUAL_DB=str(db),
        DAGSTER_HOME=str(home),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )

    # Imported once the environment is set: definitions.py reads it at import.
    import dagster as dg

    from bench.usual.definitions import usual_job

    executor = "in_process" if args.in_process else "multiprocess"
    start = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(usual_job),
            instance=instance,
            run_config={"execution": {"config": {executor: {}}}},
            raise_on_error=False,
        )
        wall = time.perf_counter() - start
        steps, failures = _steps(instance, result.run_id)
    (out / "steps.json").write_text(json.dumps(steps, indent=2) + "\n")

    if not result.success:
        print(f"usual: run {result.run_id} failed after {wall:.1f}s ({executor})", file=sys.stderr)
        for failure in failures or ["(no step failed: see the run's event log)"]:
            print(failure, file=sys.stderr)
        return 1
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM public.customer_360").fetchall()[0][0]
    print(
        f"usual: run {result.run_id} succeeded in {wall:.1f}s ({executor}): {len(steps)} steps, "
        f"customer_360 {rows} rows in {db}, step times in {out / 'steps.json'}"
    )
    return 0


def _steps(instance, run_id: str) -> tuple[dict[str, float], list[str]]:
    """Step durations from the run's event log, and the failure messages (failed steps, failed
    checks with what failed)."""
    import dagster as dg

    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        dg.DagsterEventType.RUN_FAILURE,
    }
    started, steps, failures = {}, {}, []
    for entry in instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[entry.step_key] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.RUN_FAILURE:
            failures.append(f"run failed: {event.message}")
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                failed = evaluation.metadata.get("failed")
                failures.append(f"check {evaluation.check_name} failed: {failed.value if failed else ''}")
        else:  # the step's end: success or failure
            steps[entry.step_key] = round(entry.timestamp - started.get(entry.step_key, entry.timestamp), 3)
            if event.event_type == dg.DagsterEventType.STEP_FAILURE:
                error = event.step_failure_data.error
                failures.append(f"step {entry.step_key} failed: {(error.message if error else event.message).strip()}")
    return steps, failures


if __name__ == "__main__":
    sys.exit(main())

"""The locations' executor, in real runs created as the UI creates them: a run of one product
executes in the run's own process (no fork server, no step process); a run of several products
gives each step its own process; a run tagged mesh/in_process keeps them all in its process."""

from __future__ import annotations

import os

import dagster as dg

from mesh_platform.executor import IN_PROCESS_TAG
from mesh_platform.workspace import materialize


def _step_pids(instance: dg.DagsterInstance, result) -> dict[str, int]:
    records = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.STEP_START).records
    return {r.event_log_entry.dagster_event.step_key: r.event_log_entry.dagster_event.pid for r in records}


def test_one_step_here_several_apart(mesh_home, instance):
    here = os.getpid()
    for location in ("orders", "preferences"):  # one product each
        result = materialize(location, instance, in_process=False)
        assert result.success, location
        assert _step_pids(instance, result) == {f"{location}__{'history' if location == 'orders' else 'settings'}": here}

    result = materialize("customer", instance, in_process=False)  # profiles, then insights
    assert result.success
    pids = _step_pids(instance, result)
    assert set(pids) == {"customer__profiles", "customer__insights"}
    assert here not in pids.values() and len(set(pids.values())) == 2

    result = materialize("customer", instance, in_process=True)
    assert result.success
    assert instance.get_run_by_id(result.run_id).tags[IN_PROCESS_TAG] == "true"
    assert _step_pids(instance, result) == {"customer__profiles": here, "customer__insights": here}

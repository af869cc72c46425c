"""`make bench` says where a mesh refresh's time went: before its first run, in its runs (side by
side runs counted once), between and after them; and, summed over the runs, Dagster's part outside
the steps against the products' computation, checks, commits and the rest of the steps."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from bench.__main__ import _timeline_table
from bench.measure import clean_env, run_measured
from bench.systems import ROOT, SYSTEMS
from bench.timeline import RunSpan, breakdown, refresh_timeline
from mesh_platform.seed import generate_landing


def test_phases_of_overlapping_runs():
    runs = [
        RunSpan(102.0, 105.0, [(102.5, 104.5)], 10, {"compute_s": 1.5, "audit_s": 0.2, "publish_s": 0.1}),
        RunSpan(104.0, 107.0, [(104.2, 105.0), (104.8, 106.8)], 12, {"compute_s": 2.0, "audit_s": 0.3, "publish_s": 0.1}),
    ]
    got = breakdown(100.0, 10.0, runs)
    assert got == pytest.approx({
        "before_runs_s": 2.0,
        "in_runs_s": 5.0,  # 102-105 and 104-107 overlap
        "between_and_after_runs_s": 3.0,
        "runs": 2,
        "dagster_outside_steps_s": (3.0 - 2.0) + (3.0 - 2.6),  # the second run's steps overlap: 104.2-106.8
        "compute_s": 3.5,
        "audit_s": 0.5,
        "publish_s": 0.2,
        "step_platform_s": (2.0 + 2.6) - 4.2,
        "events": 22,
    })


def test_runs_apart_leave_their_gaps_to_between():
    runs = [RunSpan(1.0, 2.0, [], 3), RunSpan(3.0, 4.5, [], 3), RunSpan(3.5, 4.0, [], 3)]
    got = breakdown(0.0, 6.0, runs)
    assert (got["before_runs_s"], got["in_runs_s"], got["between_and_after_runs_s"]) == pytest.approx((1.0, 2.5, 2.5))


def test_a_real_refresh_is_accounted_for(tmp_path):
    landing, work = tmp_path / "landing", tmp_path / "work"
    generate_landing(landing, 300, seed=5)
    work.mkdir()
    mesh = SYSTEMS["mesh"]
    started = time.time()
    m = run_measured(mesh.command(landing, work), clean_env(**mesh.env(landing, work)), ROOT, tmp_path / "mesh.log")
    assert m.returncode == 0, m.output[-3000:]

    got = refresh_timeline(work / "dagster", started, m.wall_s)

    instance = dg.DagsterInstance.from_config(str(work / "dagster"))
    try:
        records = instance.get_run_records()
        events = {r.dagster_run.run_id: instance.get_records_for_run(r.dagster_run.run_id, limit=10_000).records
                  for r in records}
        products = [dg.AssetKey(k.split("/")) for k in
                    ("customer/profiles", "orders/history", "preferences/settings", "federation/customer_360")]
        timed = {k: sum(instance.get_latest_materialization_event(p).asset_materialization.metadata[k].value
                        for p in products) for k in ("compute_s", "audit_s", "publish_s")}
    finally:
        instance.dispose()
    assert got["runs"] == len(records) == 4
    assert got["events"] == sum(len(e) for e in events.values())
    assert {k: got[k] for k in timed} == pytest.approx(timed)
    # The first run's first event comes a few milliseconds after its creation.
    first_event = min(e[0].event_log_entry.timestamp for e in events.values())
    assert first_event - started - 0.1 < got["before_runs_s"] < first_event - started
    # Python and Dagster start before any run; Dagster records every run; the steps do more than their product.
    assert got["before_runs_s"] > 0.3
    assert got["dagster_outside_steps_s"] > 0 and got["step_platform_s"] > 0 and got["between_and_after_runs_s"] > 0


def test_the_report_shows_the_medians_of_the_rounds():
    def round_(wall: float, before: float) -> dict:
        parts = dict.fromkeys(("in_runs_s", "between_and_after_runs_s", "dagster_outside_steps_s", "compute_s",
                               "audit_s", "publish_s", "step_platform_s"), 1.0)
        return {"wall_s": wall, "timeline": {**parts, "before_runs_s": before, "runs": 4, "events": 100}}

    lines = _timeline_table({"mesh": [round_(4.0, 1.0), round_(9.0, 2.0), round_(5.0, 9.0)],
                             "limit": [{"wall_s": 1.0}]})
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1].rstrip(" |") for line in lines if line.startswith("| ")}
    assert rows["before its first run: Python, Dagster and its instance, the selection, what the forks share"] == "2.00"
    assert rows["wall"] == "5.00"
    assert "Summed over its 4 runs (100 events recorded" in "\n".join(lines)
    assert not any("limit" in line for line in lines)  # a system without a timeline has no table

"""The orders location's landing sensor, ticked as the daemon ticks it (its observations reported
to the instance, its run requests run as real runs): a new orders export rebuilds orders/history;
data already built is never rebuilt; a change the checks block leaves the published version; a
product a run is building already is left to that run."""

from __future__ import annotations

import dagster as dg
import duckdb
from conftest import materialize
from held import Held
from landing import ORDERS, write_landing

from mesh_platform.runs import write_instance_config
from mesh_platform.storage import Catalog
from mesh_platform.workspace import locations

HISTORY = dg.AssetKey(["orders", "history"])
SOURCES = {dg.AssetKey(["orders", "landing", "orders"]): "orders/orders",
           dg.AssetKey(["orders", "landing", "order_lines"]): "orders/order_lines"}


class Sensor:
    """Successive ticks of one sensor, each from the previous cursor, with what the daemon does
    with a tick's result: its observations stored, its run keys remembered."""

    def __init__(self, defs: dg.Definitions, name: str, instance: dg.DagsterInstance):
        self.defs, self.instance = defs, instance
        self.sensor = defs.resolve_sensor_def(name)
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.defs.resources)
        result = self.sensor(context)
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursor = result.cursor
        return result

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(self.sensor.job_name)
        return job.execute_in_process(instance=self.instance, asset_selection=request.asset_selection,
                                      tags=request.tags, raise_on_error=False)


def history_rows(home) -> dict[str, int]:
    files = list(Catalog(home).current("orders", "history").files)
    return dict(duckdb.sql(f"SELECT customer_id, order_count FROM read_parquet({files!r})").fetchall())


def test_a_new_export_rebuilds_its_product_once(mesh_home, instance):
    defs = locations()["orders"].definitions()
    assert materialize("orders", instance).success
    built = history_rows(mesh_home)
    sensor = Sensor(defs, "orders_landing", instance)

    # First tick: both sources observed (count and bytes of their files), nothing to rebuild.
    first = sensor.tick()
    assert first.run_requests == []
    observed = {e.asset_key: e for e in first.asset_events}
    assert set(observed) == set(SOURCES)
    for key, folder in SOURCES.items():
        files = sorted((mesh_home / "landing" / folder).glob("*.parquet"))
        metadata = observed[key].metadata
        assert metadata["file_count"].value == len(files) == 1
        assert metadata["bytes"].value == sum(f.stat().st_size for f in files)
        assert metadata["dagster/last_updated_timestamp"].value == max(f.stat().st_mtime for f in files)
    # Stored as the daemon stores them: the UI shows the observation and its data version.
    source = next(iter(SOURCES))
    latest = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=source), limit=1).records[0]
    version = latest.event_log_entry.asset_observation.tags["dagster/data_version"]
    assert version == observed[source].tags["dagster/data_version"]

    # A new export with a new customer's order: one run of history, which publishes it.
    write_landing(mesh_home / "landing", orders=[*ORDERS, ("O10", "C777", "2024-08-01 10:00:00", "completed", [(1, "2.00")])])
    second = sensor.tick()
    assert {e.asset_key for e in second.asset_events} == set(SOURCES)
    assert len(second.run_requests) == 1
    request = second.run_requests[0]
    assert request.asset_selection == [HISTORY]
    assert sensor.run(request).success
    assert history_rows(mesh_home) == {**built, "C777": 1}

    # Built from what is there now: nothing more to do.
    third = sensor.tick()
    assert third.run_requests == [] and third.asset_events == []


def test_a_change_the_checks_block_is_tried_once_and_publishes_nothing(mesh_home, instance):
    defs = locations()["orders"].definitions()
    assert materialize("orders", instance).success
    published = Catalog(mesh_home).current("orders", "history").snapshot_id
    sensor = Sensor(defs, "orders_landing", instance)
    assert sensor.tick().run_requests == []

    # A completed order of negative value: lifetime_value_not_negative (blocking) fails.
    write_landing(mesh_home / "landing", orders=[*ORDERS, ("O10", "C001", "2024-08-01 10:00:00", "completed", [(1, "-500.00")])])
    request = sensor.tick().run_requests[0]
    result = sensor.run(request)
    assert not result.success
    assert Catalog(mesh_home).current("orders", "history").snapshot_id == published
    # The next tick asks again under the same run key: the daemon runs a run key once.
    again = sensor.tick().run_requests
    assert [r.run_key for r in again] == [request.run_key]


def test_a_product_a_run_is_building_is_left_to_that_run(mesh_home, tmp_path):
    """A new export while `mesh materialize` (held at its compute by a fault point) is building
    history from it: the sensor observes the export and requests no second run; once that run
    has published, nothing is left to rebuild."""
    write_instance_config(mesh_home / "dagster")
    with dg.DagsterInstance.from_config(str(mesh_home / "dagster")) as instance:
        defs = locations()["orders"].definitions()
        assert materialize("orders", instance).success
        sensor = Sensor(defs, "orders_landing", instance)
        assert sensor.tick().run_requests == []

        write_landing(mesh_home / "landing", orders=[*ORDERS, ("O10", "C777", "2024-08-01 10:00:00", "completed", [(1, "2.00")])])
        held = Held(mesh_home, tmp_path, "materialize", "orders")
        during = sensor.tick()
        assert {e.asset_key for e in during.asset_events} == set(SOURCES)
        assert during.run_requests == []

        code, out = held.release()
        assert code == 0, out
        assert history_rows(mesh_home)["C777"] == 1
        assert sensor.tick().run_requests == []

"""customer_360's declarative automation, evaluated tick by tick over the real code locations.

The four locations of workspace.yaml are loaded as Dagster loads them and evaluated together (as
the daemon sees one deployment), against a test instance whose history comes from real runs.
customer_360 must run when an upstream product publishes, and never on an upstream whose
latest materialization has a failed blocking check (the trap described in
/work/shared/STACK-NOTES.md: plain eager() would run it).
"""

from __future__ import annotations

import dagster as dg
from conftest import materialize, materialize_daily, step_failure_messages
from landing import CRM_CSV, write_landing
from merged import deployment

from mesh_platform.storage import Catalog
from mesh_platform.workspace import locations

CUSTOMER_360 = dg.AssetKey(["federation", "customer_360"])
PROFILES = dg.AssetKey(["customer", "profiles"])
INSIGHTS = dg.AssetKey(["customer", "insights"])


def location_defs() -> dict[str, dg.Definitions]:
    return {name: loc.definitions() for name, loc in locations().items()}


def with_plain_eager(defs: dg.Definitions) -> dg.Definitions:
    """The same deployment with customer_360 on plain eager(): the control for the trap."""

    def plain(a):
        if isinstance(a, dg.AssetsDefinition) and CUSTOMER_360 in a.keys:
            return a.map_asset_specs(
                lambda spec: spec.replace_attributes(automation_condition=dg.AutomationCondition.eager())
            )
        return a

    return dg.Definitions(assets=[plain(a) for a in defs.assets])


class Ticks:
    """Successive evaluations of one deployment's automation, each from the previous cursor."""

    def __init__(self, defs: dg.Definitions, selection: dg.AssetSelection, instance):
        self.defs, self.selection, self.instance = defs, selection, instance
        self.cursor = None

    def tick(self) -> dg.EvaluateAutomationConditionsResult:
        result = dg.evaluate_automation_conditions(
            defs=self.defs,
            instance=self.instance,
            # What the federation sensor evaluates (also avoids the default selection's beta
            # `include_sources` parameter).
            asset_selection=self.selection,
            cursor=self.cursor,
        )
        self.cursor = result.cursor
        return result


def requested(result: dg.EvaluateAutomationConditionsResult) -> bool:
    partitions = result.get_requested_partitions(CUSTOMER_360)
    assert partitions in (set(), {None})  # unpartitioned: requested whole or not at all
    assert result.total_requested == len(partitions)  # nothing else is automated
    return partitions == {None}


def automation_sensor(defs: dg.Definitions, location: str) -> dg.AutomationConditionSensorDefinition:
    sensor = defs.resolve_sensor_def(f"{location}_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    return sensor


def test_each_location_runs_its_own_automation_sensor():
    defs = location_defs()
    graph = deployment(defs).resolve_asset_graph()
    for name in ("customer", "orders", "preferences", "federation"):
        sensor = automation_sensor(defs[name], name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        # Among products the ones built from products are automated (customer_360 and
        # customer/insights; the rest run on their schedules); every location's grants follow
        # its contracts.
        automated = {"federation": {CUSTOMER_360}, "customer": {INSIGHTS}}.get(name, set())
        expected = {dg.AssetKey([name, "governance", "grants"])} | automated
        assert sensor.asset_selection.resolve(graph) == expected, name


def test_customer_360_follows_published_upstreams_and_never_a_failed_blocking_check(mesh_home, instance):
    defs = location_defs()
    selection = dg.AssetSelection.assets(CUSTOMER_360)
    real = Ticks(deployment(defs), selection, instance)
    # Evaluated on the same instance with its own cursor: shows what plain eager() would do.
    control = Ticks(with_plain_eager(real.defs), selection, instance)

    def tick() -> tuple[bool, bool]:
        return requested(real.tick()), requested(control.tick())

    # Nothing published yet: nothing to build from.
    assert tick() == (False, False)

    for location in ("orders", "preferences", "customer"):  # customer/insights reads the other two
        result = materialize(location, instance)
        assert result.success, step_failure_messages(result)
    assert tick() == (True, True)

    result = materialize("federation", instance)
    assert result.success, step_failure_messages(result)
    assert tick() == (False, False)

    # A bad CRM export: customer/profiles is not published (no materialization at all).
    write_landing(mesh_home / "landing", crm_csv=CRM_CSV.replace("FR,consumer", "FR,vip"))
    result = materialize("customer", instance)
    assert not result.success
    assert "segment_is_known" in step_failure_messages(result)
    assert result.get_asset_materialization_events() == []
    assert tick() == (False, False)

    # The trap: a materialization IS recorded, and a blocking check of it failed. Every other
    # blocking check of customer/profiles passed on it, so the failed one is what must stop
    # customer_360. (Runless events: the public way to record them without a run. Reported
    # after the materialization, they target it.)
    checks = {spec.name: spec for a in real.defs.assets if isinstance(a, dg.AssetsDefinition)
              for spec in a.check_specs if spec.asset_key == PROFILES}
    assert set(checks) == {
        "schema", "email_is_normalized", "country_is_iso_code", "segment_is_known", "has_customers", "volume"
    }
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=PROFILES))
    for name, spec in sorted(checks.items()):
        assert spec.blocking, name
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=PROFILES,
                check_name=name,
                passed=name != "segment_is_known",
                severity=dg.AssetCheckSeverity.ERROR,
                blocking=True,
            )
        )
    record = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(PROFILES, "segment_is_known")
    )
    assert record.status.value == "FAILED" and record.run_id != result.run_id  # the runless one
    assert tick() == (False, True)  # plain eager() would have built on the failed upstream

    # A good export again: customer publishes with every check passing, customer_360 follows.
    write_landing(mesh_home / "landing")
    result = materialize("customer", instance)
    assert result.success, step_failure_messages(result)
    assert tick()[0] is True
    # Requested once: the next tick, with nothing new upstream, requests nothing.
    assert tick()[0] is False


def test_customer_insights_follow_their_inputs_across_locations(mesh_home, instance):
    """customer/insights is not on the customer location's daily schedule: it is built when
    any of its inputs (profiles in its own location, history and settings in two others)
    publishes, once all of them exist."""
    ticks = Ticks(deployment(location_defs()), dg.AssetSelection.assets(INSIGHTS), instance)

    def requested() -> bool:
        result = ticks.tick()
        return result.get_requested_partitions(INSIGHTS) == {None}

    assert requested() is False
    for location in ("orders", "customer"):  # customer's daily job: profiles only
        result = materialize_daily(location, instance)
        assert result.success, step_failure_messages(result)
        assert requested() is False  # preferences/settings not published yet
    result = materialize_daily("preferences", instance)
    assert result.success, step_failure_messages(result)
    assert requested() is True

    result = materialize("customer", instance)  # what the sensor's run builds (and profiles again)
    assert result.success, step_failure_messages(result)
    assert requested() is False
    result = materialize_daily("orders", instance)  # a new orders/history
    assert result.success, step_failure_messages(result)
    assert requested() is True


def test_an_upstream_published_in_the_tick_customer_360_was_built_is_followed(mesh_home, instance):
    """customer_360 built from the previous upstream versions while orders publishes a new one,
    both between two ticks (concurrent runs in a team's deployment): the next tick requests it.
    Plain eager() loses that update (its own update resets it in the same tick)."""
    defs = location_defs()
    selection = dg.AssetSelection.assets(CUSTOMER_360)
    real = Ticks(deployment(defs), selection, instance)
    control = Ticks(with_plain_eager(real.defs), selection, instance)

    def tick() -> tuple[bool, bool]:
        return requested(real.tick()), requested(control.tick())

    for location in ("orders", "preferences", "customer", "federation"):
        assert materialize(location, instance).success, location
    assert tick() == (False, False)  # the first evaluation: what is there counts as handled

    assert materialize("federation", instance).success
    history = materialize("orders", instance)
    assert history.success
    assert tick() == (True, False)

    # Built from that version: nothing more to do.
    result = materialize("federation", instance)
    assert result.success
    pinned = Catalog(mesh_home).current("federation", "customer_360").summary["mesh.upstream.orders/history"]
    assert pinned == str(Catalog(mesh_home).current("orders", "history").snapshot_id)
    assert tick() == (False, False)

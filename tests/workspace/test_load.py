"""The four code locations of workspace.yaml load cleanly, and show what their contracts say.

Loading is done the way a Dagster code server does it for a `python_file` entry: execute the
file as a fresh module and take its `defs` (a `@dg.definitions` function or a Definitions
object), with every warning raised as an error. Then the real `dagster definitions validate`
CLI, in its own processes. The expected asset graph and metadata are written out below, from
the contracts and the design, not read from the code under test.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from workspace.server import server_env

from mesh_platform.follow import follows_inputs
from mesh_platform.workspace import locations

ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = ["customer", "orders", "preferences", "federation"]
DOMAINS = LOCATIONS[:3]


@pytest.fixture(scope="module")
def defs() -> dict[str, dg.Definitions]:
    """Every location's Definitions, loaded and validated with warnings as errors.

    Measured on this stack: loading emits no warning at all (not even a third-party import
    DeprecationWarning), so nothing is exempted here."""
    loaded = {}
    for name, location in locations().items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            d = location.definitions()
            dg.Definitions.validate_loadable(d)  # what `dagster definitions validate` checks
        loaded[name] = d
    return loaded


def test_workspace_declares_the_four_locations():
    found = locations()
    assert list(found) == LOCATIONS
    assert {n: loc.path for n, loc in found.items()} == {
        "customer": ROOT / "domains/customer/definitions.py",
        "orders": ROOT / "domains/orders/definitions.py",
        "preferences": ROOT / "domains/preferences/definitions.py",
        "federation": ROOT / "mesh_platform/federation/definitions.py",
    }


@pytest.mark.parametrize("name", LOCATIONS)
def test_location_loads_without_warnings(defs, name):
    assert isinstance(defs[name], dg.Definitions)


# ---------------------------------------------------------------------------------------------
# The whole asset graph, as the four locations declare it.

PRODUCT_KINDS = {"duckdb", "iceberg"}

GRAPH = {
    "customer/landing/crm_export": {
        "location": "customer", "owners": ["team:customer-team"], "group": "customer",
        "kinds": {"csv"}, "deps": set(),
    },
    "customer/profiles": {
        "location": "customer", "owners": ["team:customer-team"], "group": "customer",
        "kinds": PRODUCT_KINDS, "deps": {"customer/landing/crm_export"},
    },
    # The customer domain's second team; cross-location edges from orders and preferences.
    "customer/insights": {
        "location": "customer", "owners": ["team:customer-analytics"], "group": "customer",
        "kinds": PRODUCT_KINDS, "deps": {"customer/profiles", "orders/history", "preferences/settings"},
    },
    "orders/landing/orders": {
        "location": "orders", "owners": ["team:orders-team"], "group": "orders",
        "kinds": {"parquet"}, "deps": set(),
    },
    "orders/landing/order_lines": {
        "location": "orders", "owners": ["team:orders-team"], "group": "orders",
        "kinds": {"parquet"}, "deps": set(),
    },
    "orders/history": {
        "location": "orders", "owners": ["team:orders-team"], "group": "orders",
        "kinds": PRODUCT_KINDS, "deps": {"orders/landing/orders", "orders/landing/order_lines"},
    },
    "preferences/landing/preference_events": {
        "location": "preferences", "owners": ["team:preferences-team"], "group": "preferences",
        "kinds": {"json"}, "deps": set(),
    },
    "preferences/settings": {
        "location": "preferences", "owners": ["team:preferences-team"], "group": "preferences",
        "kinds": PRODUCT_KINDS, "deps": {"preferences/landing/preference_events"},
    },
    # The cross-location edges: federation reads the three domains' products by key only.
    "federation/customer_360": {
        "location": "federation", "owners": ["team:platform-team"], "group": "federation",
        "kinds": PRODUCT_KINDS,
        "deps": {"customer/profiles", "orders/history", "preferences/settings"},
    },
    # Each location's read grants, compiled from its contracts by the platform.
    **{
        f"{name}/governance/grants": {
            "location": name, "owners": ["team:platform-team"], "group": name, "kinds": {"governance"}, "deps": set(),
        }
        for name in LOCATIONS
    },
}

# Keys each location's own asset graph holds: its assets, plus the other locations' products
# it depends on (Dagster stubs them; the owning location defines them).
LOCATION_GRAPH_KEYS = {
    "customer": {
        "customer/landing/crm_export", "customer/profiles", "customer/insights", "customer/governance/grants",
        "orders/history", "preferences/settings",
    },
    "orders": {"orders/landing/orders", "orders/landing/order_lines", "orders/history", "orders/governance/grants"},
    "preferences": {"preferences/landing/preference_events", "preferences/settings", "preferences/governance/grants"},
    "federation": {
        "federation/customer_360", "customer/profiles", "orders/history", "preferences/settings",
        "federation/governance/grants",
    },
}

# Check name -> blocking, per product: "schema" and "volume" from the platform, the rest from the contract.
CHECKS = {
    "customer/profiles": {
        "schema": True, "email_is_normalized": True, "country_is_iso_code": True,
        "segment_is_known": True, "has_customers": True, "volume": True,
    },
    "orders/history": {
        "schema": True, "order_count_positive": True, "lifetime_value_not_negative": True,
        "has_customers": True, "first_before_last": True, "volume": True,
    },
    "preferences/settings": {"schema": True, "channel_is_known": True, "has_customers": True, "volume": True},
    "customer/insights": {
        "schema": True, "has_customers": True, "one_row_per_profile": True, "one_reference_date": True,
        "value_tier_is_known": True, "lifetime_value_matches_orders": True, "recency_not_negative": True,
        "mean_recency_within_a_year": True, "lifecycle_stage_is_known": True,
        "preferred_channel_is_known": True, "volume": True,
    },
    "federation/customer_360": {"schema": True, "one_row_per_profile": True, "volume": True},
}

# The contracts' latency SLAs.
FRESHNESS = {
    "customer/profiles": timedelta(hours=26),
    "orders/history": timedelta(hours=26),
    "preferences/settings": timedelta(hours=26),
    "customer/insights": timedelta(hours=27),
    "federation/customer_360": timedelta(hours=27),
    # Landing sources state no latency: nightly exports, overdue after 26 hours.
    "customer/landing/crm_export": timedelta(hours=26),
    "orders/landing/orders": timedelta(hours=26),
    "orders/landing/order_lines": timedelta(hours=26),
    "preferences/landing/preference_events": timedelta(hours=26),
}


def _own_keys(d: dg.Definitions) -> set[str]:
    """The asset keys a location defines itself (not the stubs of other locations' assets)."""
    keys = set()
    for a in d.assets:
        if isinstance(a, dg.AssetSpec):
            keys.add(a.key.to_user_string())
        else:
            keys |= {k.to_user_string() for k in a.keys}
    return keys


def _spec(d: dg.Definitions, key: str) -> dg.AssetSpec:
    return next(s for s in d.resolve_all_asset_specs() if s.key.to_user_string() == key)


def test_asset_graph_snapshot(defs):
    actual = {}
    for name, d in defs.items():
        for key in _own_keys(d):
            assert key not in actual, f"{key} defined by {actual[key]['location']} and {name}"
            spec = _spec(d, key)
            actual[key] = {
                "location": name,
                "owners": list(spec.owners),
                "group": spec.group_name,
                "kinds": set(spec.kinds),
                "deps": {dep.asset_key.to_user_string() for dep in spec.deps},
            }
    assert actual == GRAPH


def test_each_location_graph_holds_its_assets_and_upstream_stubs(defs):
    graphs = {
        name: {k.to_user_string() for k in d.resolve_asset_graph().get_all_asset_keys()}
        for name, d in defs.items()
    }
    assert graphs == LOCATION_GRAPH_KEYS


def test_asset_checks_per_product(defs):
    actual = {}
    for d in defs.values():
        for key in _own_keys(d):
            spec_key = dg.AssetKey.from_user_string(key)
            assets_def = d.resolve_assets_def(spec_key)
            checks = {c.name: c.blocking for c in assets_def.check_specs}
            if checks:
                actual[key] = checks
    assert actual == CHECKS


def test_freshness_policies_come_from_the_contracts_latency(defs):
    actual = {}
    for d in defs.values():
        for key in _own_keys(d):
            # AssetSpec.freshness_policy is Dagster 1.13's public attribute (the new
            # FreshnessPolicy; `legacy_freshness_policy` is the deprecated one).
            policy = d.resolve_assets_def(dg.AssetKey.from_user_string(key)).get_asset_spec(
                dg.AssetKey.from_user_string(key)
            ).freshness_policy
            if policy is not None:
                assert policy.warn_window is None, key
                actual[key] = policy.fail_window.to_timedelta()
    assert actual == FRESHNESS


AUTOMATED = {  # product -> its location: built from other products, they follow them
    "federation/customer_360": "federation",
    "customer/insights": "customer",
}


@pytest.mark.parametrize("key", sorted(AUTOMATED))
def test_products_built_from_products_are_automated_across_locations(defs, key):
    location = AUTOMATED[key]
    spec = _spec(defs[location], key)
    # Runs when an upstream product publishes, only once all upstream blocking checks passed.
    assert spec.automation_condition == follows_inputs()
    for name, product in [("customer", "customer/profiles"), ("orders", "orders/history"),
                          ("preferences", "preferences/settings")]:
        assert _spec(defs[name], product).automation_condition is None, product

    sensor = defs[location].resolve_sensor_def(f"{location}_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    # The implicit default automation sensor starts STOPPED; this one must not.
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs[location].resolve_asset_graph()
    assert sensor.asset_selection.resolve(graph) == {
        dg.AssetKey.from_user_string(key), dg.AssetKey([location, "governance", "grants"]),
    }


def test_sensors_per_location(defs):
    # Each location's automation applies its contracts' grants when they change; each domain
    # watches its landing files; the platform's location also builds customer_360 and fails runs
    # whose worker died.
    assert {n: sorted(s.name for s in d.sensors or []) for n, d in defs.items()} == {
        "customer": ["customer_automation", "customer_landing"], "orders": ["orders_automation", "orders_landing"],
        "preferences": ["preferences_automation", "preferences_landing"],
        "federation": ["federation_automation", "run_monitor"],
    }
    for d in defs.values():
        assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in d.sensors)


def test_the_platform_maintains_every_table_daily(defs):
    d = defs["federation"]
    schedule = d.resolve_schedule_def("mesh_maintenance_daily")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == ("0 3 * * *", "UTC", "mesh_maintenance")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


PRODUCTS_OF = {
    "customer": {"customer/profiles", "customer/insights"},
    "orders": {"orders/history"},
    "preferences": {"preferences/settings"},
}
# What each domain's daily schedule runs: its products built from landing data.
DAILY = {"customer": "customer_scheduled", "orders": "orders_products", "preferences": "preferences_products"}


@pytest.mark.parametrize("name", DOMAINS)
def test_job_and_daily_schedule(defs, name):
    d = defs[name]
    graph = d.resolve_asset_graph()
    jobs = {j.name: {k.to_user_string() for k in j.selection.resolve(graph)} for j in d.jobs}
    # The location's job runs all its products, never the landing sources or another location's.
    assert jobs[f"{name}_products"] == PRODUCTS_OF[name]
    d.resolve_job_def(f"{name}_products")  # resolves against the location's assets
    if name == "customer":
        # customer/insights follows its inputs by automation; the schedule keeps profiles daily.
        assert jobs == {"customer_products": PRODUCTS_OF[name], "customer_scheduled": {"customer/profiles"}}
    else:
        assert list(jobs) == [f"{name}_products"]

    assert sorted(s.name for s in d.schedules) == [f"{name}_daily"]
    schedule = d.resolve_schedule_def(f"{name}_daily")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == DAILY[name]
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_federation_follows_its_upstreams_instead_of_a_schedule(defs):
    d = defs["federation"]
    assert [j.name for j in d.jobs] == ["federation_products", "mesh_maintenance"]
    # customer_360 is rebuilt by automation when upstreams publish; only maintenance is scheduled.
    assert [s.name for s in d.schedules] == ["mesh_maintenance_daily"]


# ---------------------------------------------------------------------------------------------
# Metadata derived from customer/profiles' contract.

PROFILES_COLUMNS = [
    # name, type, nullable, unique, tags
    ("customer_id", "VARCHAR", False, True, {}),
    ("first_name", "VARCHAR", True, False, {"classification": "pii"}),
    ("last_name", "VARCHAR", True, False, {"classification": "pii"}),
    ("email", "VARCHAR", True, False, {"classification": "pii"}),
    ("country", "VARCHAR", True, False, {}),
    ("segment", "VARCHAR", False, False, {}),
    ("signup_date", "DATE", False, False, {}),
    ("updated_at", "TIMESTAMP", False, False, {}),
]


def test_profiles_metadata_from_its_contract(defs):
    key = dg.AssetKey(["customer", "profiles"])
    spec = defs["customer"].resolve_assets_def(key).get_asset_spec(key)

    schema = spec.metadata["dagster/column_schema"]
    assert isinstance(schema, dg.TableSchema)
    assert [
        (c.name, c.type, c.constraints.nullable, c.constraints.unique, dict(c.tags or {}))
        for c in schema.columns
    ] == PROFILES_COLUMNS
    descriptions = {c.name: c.description for c in schema.columns if c.description}
    assert descriptions == {
        "customer_id": "CRM customer id.",
        "email": "Lower-cased, trimmed.",
        "country": "ISO 3166-1 alpha-2, upper-cased and trimmed; null when the CRM has none.",
        "segment": "Lower-cased and trimmed.",
    }

    assert spec.code_version == "1.0.0"
    assert {k: v for k, v in spec.tags.items() if not k.startswith("dagster/")} == {
        "Domain": "customer", "Owner": "customer-team", "DataProduct": "profiles",
        "customer": "", "pii": "",  # the contract's tags, as labels
    }
    assert {k: v for k, v in spec.tags.items() if k.startswith("dagster/")} == {
        "dagster/kind/duckdb": "", "dagster/kind/iceberg": "",
    }
    assert spec.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))
    assert spec.freshness_policy.fail_window.to_timedelta() == timedelta(hours=26)

    assert spec.metadata["dagster/table_name"] == "customer.profiles"
    assert spec.metadata["contract"] == dg.MetadataValue.path(
        str(ROOT / "domains/customer/contracts/profiles.odcs.yaml")
    )
    assert spec.metadata["contract_version"] == "1.0.0"
    assert spec.metadata["readers"] == "federation"
    assert spec.metadata["contract_status"] == "active"
    assert spec.description.startswith("Current customer records.")
    assert "One row per customer, the current state of the CRM record, cleaned." in spec.description


def test_insights_metadata_from_its_contract(defs):
    """The customer domain's second team owns customer/insights: owner, tags and readers come
    from its own contract."""
    spec = _spec(defs["customer"], "customer/insights")
    assert spec.owners == ["team:customer-analytics"]
    assert {k: v for k, v in spec.tags.items() if not k.startswith("dagster/")} == {
        "Domain": "customer", "Owner": "customer-analytics", "DataProduct": "insights",
        "customer": "", "analytics": "", "marketing": "", "pii": "",
    }
    columns = {c.name: c for c in spec.metadata["dagster/column_schema"].columns}
    assert list(columns)[:5] == ["customer_id", "email", "country", "segment", "value_tier"]
    assert dict(columns["email"].tags) == {"classification": "pii"}
    assert columns["days_since_last_order"].constraints.nullable
    assert not columns["as_of_date"].constraints.nullable
    assert spec.metadata["readers"] == "federation"
    assert spec.code_version == "1.0.0"
    assert spec.description.startswith("Per-customer analytics for marketing and CRM.")


def test_crm_export_source_is_described_by_its_source_contract(defs):
    key = dg.AssetKey(["customer", "landing", "crm_export"])
    spec = _spec(defs["customer"], "customer/landing/crm_export")
    assert spec.key == key
    assert spec.metadata["landing_path"] == "customer/crm_export.csv"
    columns = [(c.name, c.type, c.constraints.nullable) for c in spec.metadata["dagster/column_schema"].columns]
    assert columns == [
        ("customer_id", "VARCHAR", False),
        ("first_name", "VARCHAR", True),
        ("last_name", "VARCHAR", True),
        ("email", "VARCHAR", True),
        ("country", "VARCHAR", True),
        ("segment", "VARCHAR", True),
        ("signup_date", "DATE", True),
        ("updated_at", "TIMESTAMP", False),
    ]


# ---------------------------------------------------------------------------------------------
# The real CLI, one code server process per location.

# Python warnings as printed ("path:line: Category: message"), also inside Dagster log lines.
_WARNING = re.compile(r"(?P<file>\S+\.py):(?P<line>\d+): (?P<category>\w*Warning): (?P<message>.*)")
# Dagster's own, allowed explicitly: (file suffix, category, message start).
ALLOWED_WARNINGS = [
    # The CLI command itself points to `dg check defs`, which needs a `dg` project layout.
    ("click/core.py", "SupersessionWarning",
     "Function `definitions_validate_command` is superseded"),
    # Dagster's code server reads its own deprecated ScheduleDefinition.environment_vars while
    # snapshotting any schedule (only shown with PYTHONWARNINGS=default).
    ("dagster/_core/remote_representation/external_data.py", "DeprecationWarning",
     "Property `ScheduleDefinition.environment_vars` is deprecated"),
]


def test_dagster_definitions_validate_cli(tmp_path):
    env = server_env(tmp_path / "mesh")
    # Show every warning (DeprecationWarnings included) in the CLI and its code servers.
    env["PYTHONWARNINGS"] = "default"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for name in LOCATIONS:
        assert f"Validation successful for code location {name}." in output, output
    assert "All code locations passed validation." in output, output

    ours = [
        line for line in output.splitlines()
        if re.search(r"warning", line, re.IGNORECASE)
        and re.search(r"(^|[/\s])(domains|mesh_platform|mesh_products)[/.]", line)
    ]
    assert ours == [], "warnings about our code:\n" + "\n".join(ours)

    found = [m.groupdict() for m in _WARNING.finditer(output)]
    unexpected = [
        w for w in found
        if not any(
            w["file"].endswith(f) and w["category"] == c and w["message"].startswith(m)
            for f, c, m in ALLOWED_WARNINGS
        )
    ]
    assert unexpected == [], output
    # The CLI's own SupersessionWarning is really there: the scan above does see warnings.
    assert any(w["category"] == "SupersessionWarning" for w in found), output

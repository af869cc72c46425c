"""The four products built the usual way: Dagster assets in pandas, stored by the DuckDB pandas
I/O manager, checked by blocking asset checks running Great Expectations suites.

Each asset reimplements its mesh product (the SQL in domains/*/products and
mesh_platform/federation/products) in idiomatic pandas; each check runs what the mesh derives
from the product's contract: the column list and types, required and primary-key columns, and
the contract's quality rules, as one expectation suite per asset.

`great_expectations` is imported inside the functions that validate, as a user who has timed
it would: at the top of the module (as the tutorials show it) every step process, asset steps
included, would pay its import, seconds each, and the baseline would look worse than it is.

Configuration: BENCH_LANDING (landing root) and BENCH_USUAL_DB (the DuckDB database file).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb_pandas import DuckDBPandasIOManager

LANDING = Path(os.environ.get("BENCH_LANDING", "landing"))
PREFERENCE_FIELDS = ["channel", "language", "marketing_opt_in", "interests"]


@dg.asset
def profiles() -> pd.DataFrame:
    """The latest CRM record per customer, cleaned."""
    # The CRM leaves unknown countries empty; only an empty field is missing ("NA" is Namibia).
    crm = pd.read_csv(
        LANDING / "customer" / "crm_export.csv",
        keep_default_na=False,
        na_values=[""],
        parse_dates=["signup_date", "updated_at"],
    )
    # A customer is exported once per update: the latest updated_at wins, ties by raw email.
    crm = crm.sort_values(["updated_at", "email"], ascending=[False, True])
    crm = crm.drop_duplicates("customer_id")
    country = crm["country"].str.strip(" ").str.upper()
    return pd.DataFrame({
        "customer_id": crm["customer_id"],
        "first_name": crm["first_name"].str.strip(" "),
        "last_name": crm["last_name"].str.strip(" "),
        "email": crm["email"].str.strip(" ").str.lower(),
        "country": country.where(country != ""),
        "segment": crm["segment"].str.strip(" ").str.lower(),
        "signup_date": crm["signup_date"],
        "updated_at": crm["updated_at"],
    }).reset_index(drop=True)


@dg.asset
def history() -> pd.DataFrame:
    """Per customer who ever ordered: counts, completed value, and the five latest orders."""
    orders = pd.read_parquet(LANDING / "orders" / "orders")
    lines = pd.read_parquet(LANDING / "orders" / "order_lines")
    # unit_price is a Parquet decimal (Decimal objects in pandas). As floats, with each order's
    # value rounded to the cent, the sums stay exact to the cent.
    lines["amount"] = lines["quantity"] * lines["unit_price"].astype(float)
    order_value = lines.groupby("order_id")["amount"].sum()
    orders["amount"] = orders["order_id"].map(order_value).fillna(0.0).round(2)  # no lines: 0
    orders["completed"] = orders["status"].eq("completed")
    orders["completed_amount"] = orders["amount"].where(orders["completed"], 0.0)
    # Newest first (ties: the larger order id), so head(5) per customer is its recent orders.
    orders = orders.sort_values(["customer_id", "order_ts", "order_id"], ascending=[True, False, False])

    out = orders.groupby("customer_id").agg(
        order_count=("order_id", "size"),
        completed_order_count=("completed", "sum"),
        lifetime_value=("completed_amount", "sum"),
        first_order_at=("order_ts", "min"),
        last_order_at=("order_ts", "max"),
    )
    out["lifetime_value"] = out["lifetime_value"].round(2)
    recent = orders.groupby("customer_id").head(5)
    # A column of dicts becomes a DuckDB STRUCT, a column of lists of dicts a STRUCT(...)[].
    records = recent[["order_id", "order_ts", "status", "amount"]].rename(columns={"order_ts": "ordered_at"})
    records = pd.Series(records.to_dict("records"), index=recent.index)
    out["recent_orders"] = records.groupby(recent["customer_id"]).agg(list)
    return out.reset_index()


@dg.asset
def settings() -> pd.DataFrame:
    """Per customer who ever set a preference: the latest value of each field."""
    # dtype=False: ids stay strings and each value stays as parsed (str, bool or list).
    events = pd.concat(
        pd.read_json(f, lines=True, dtype=False, convert_dates=["event_ts"])
        for f in sorted((LANDING / "preferences" / "events").glob("*.jsonl"))
    )
    # Events arrive out of order: the latest per customer and field wins (ties: larger event id).
    latest = events.sort_values(["event_ts", "event_id"], ascending=False)
    latest = latest.drop_duplicates(["customer_id", "field"])
    values = latest.pivot(index="customer_id", columns="field", values="value")
    values = values.reindex(columns=PREFERENCE_FIELDS)  # a field nobody set: all missing
    out = pd.DataFrame({
        "channel": values["channel"],
        "language": values["language"],
        "marketing_opt_in": values["marketing_opt_in"].eq(True),  # never set: not opted in
        "interests": [v if isinstance(v, list) else [] for v in values["interests"]],
        "updated_at": latest.groupby("customer_id")["event_ts"].max(),
    })
    return out.rename_axis("customer_id").reset_index()


@dg.asset
def customer_360(profiles: pd.DataFrame, history: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """One row per profile, with its profile, order history and preferences as structs."""
    # Left joins onto the profiles: nobody is dropped; customers without orders get zeros.
    orders = profiles[["customer_id"]].merge(history, on="customer_id", how="left")
    orders = orders.fillna({"order_count": 0, "completed_order_count": 0, "lifetime_value": 0.0})
    orders = orders.astype({"order_count": "int64", "completed_order_count": "int64"})
    # Lists come back from DuckDB as numpy arrays; a customer without orders gets an empty list.
    orders["recent_orders"] = [[] if isinstance(v, float) else v for v in orders["recent_orders"]]
    prefs = settings.set_index("customer_id")
    prefs = pd.Series(prefs.to_dict("records"), index=prefs.index)
    return pd.DataFrame({
        "customer_id": profiles["customer_id"],
        "profile": profiles.drop(columns="customer_id").to_dict("records"),
        "order_history": orders.drop(columns="customer_id").to_dict("records"),
        "preferences": profiles["customer_id"].map(prefs),  # NaN (NULL): never set a preference
    })


# --- checks: what the mesh runs from each contract, as one GX suite per asset -----------------

def _validate(df: pd.DataFrame, name: str, expectations: list) -> dg.AssetCheckResult:
    import great_expectations as gx
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(name)
        .get_batch(batch_parameters={"dataframe": df})
    )
    result = batch.validate(gx.ExpectationSuite(name=name, expectations=expectations))
    failed = {
        f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column', '')})": str(
            r.result.get("observed_value", r.result.get("unexpected_count"))
        )
        for r in result.results
        if not r.success
    }
    return dg.AssetCheckResult(
        passed=result.success,
        metadata={"expectations": len(result.results), "failed": failed},
    )


def _schema(columns: dict[str, str], required: list[str], key: str) -> list:
    """The contract's schema: columns in order with their (pandas) types, required columns
    not null, the primary key unique. Lists come back from DuckDB as numpy arrays: 'object'."""
    import great_expectations as gx

    return [
        gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=list(columns)),
        *(gx.expectations.ExpectColumnValuesToBeOfType(column=c, type_=t) for c, t in columns.items()),
        *(gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in [key, *required]),
        gx.expectations.ExpectColumnValuesToBeUnique(column=key),
    ]


@dg.asset_check(asset=profiles, blocking=True)
def profiles_contract(profiles: pd.DataFrame) -> dg.AssetCheckResult:
    """domains/customer/contracts/profiles.odcs.yaml"""
    import great_expectations as gx

    return _validate(profiles, "profiles", [
        *_schema(
            {"customer_id": "str", "first_name": "str", "last_name": "str", "email": "str",
             "country": "str", "segment": "str", "signup_date": "datetime64", "updated_at": "datetime64"},
            required=["segment", "signup_date", "updated_at"],
            key="customer_id",
        ),
        gx.expectations.ExpectColumnValuesToMatchRegex(
            column="email", regex=r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$"
        ),
        gx.expectations.ExpectColumnValueLengthsToEqual(column="country", value=2),
        gx.expectations.ExpectColumnValuesToBeInSet(column="segment", value_set=["consumer", "smb", "enterprise"]),
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
    ])


@dg.asset_check(asset=history, blocking=True)
def history_contract(history: pd.DataFrame) -> dg.AssetCheckResult:
    """domains/orders/contracts/history.odcs.yaml"""
    import great_expectations as gx

    return _validate(history, "history", [
        *_schema(
            {"customer_id": "str", "order_count": "int64", "completed_order_count": "int64",
             "lifetime_value": "float64", "first_order_at": "datetime64", "last_order_at": "datetime64",
             "recent_orders": "object"},
            required=["order_count", "completed_order_count", "lifetime_value", "first_order_at",
                      "last_order_at", "recent_orders"],
            key="customer_id",
        ),
        gx.expectations.ExpectColumnValuesToBeBetween(column="order_count", min_value=1),
        gx.expectations.ExpectColumnValuesToBeBetween(column="lifetime_value", min_value=0),  # sql: count(< 0) = 0
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
        gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(  # sql: count(first > last) = 0
            column_A="last_order_at", column_B="first_order_at", or_equal=True
        ),
    ])


@dg.asset_check(asset=settings, blocking=True)
def settings_contract(settings: pd.DataFrame) -> dg.AssetCheckResult:
    """domains/preferences/contracts/settings.odcs.yaml"""
    import great_expectations as gx

    return _validate(settings, "settings", [
        *_schema(
            {"customer_id": "str", "channel": "str", "language": "str", "marketing_opt_in": "bool",
             "interests": "object", "updated_at": "datetime64"},
            required=["marketing_opt_in", "interests", "updated_at"],
            key="customer_id",
        ),
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
        gx.expectations.ExpectColumnValuesToBeInSet(column="channel", value_set=["email", "sms", "push", "none"]),
    ])


@dg.asset_check(asset=customer_360, blocking=True, additional_ins={"profiles": dg.AssetIn("profiles")})
def customer_360_contract(customer_360: pd.DataFrame, profiles: pd.DataFrame) -> dg.AssetCheckResult:
    """mesh_platform/federation/contracts/customer_360.odcs.yaml"""
    import great_expectations as gx

    return _validate(customer_360, "customer_360", [
        *_schema(
            {"customer_id": "str", "profile": "dict", "order_history": "dict", "preferences": "dict"},
            required=["profile", "order_history"],
            key="customer_id",
        ),
        # sql: count(*) - (SELECT count(*) FROM upstream_customer_profiles) = 0
        gx.expectations.ExpectTableRowCountToEqual(value=len(profiles)),
    ])


usual = dg.define_asset_job("usual")

defs = dg.Definitions(
    assets=[profiles, history, settings, customer_360],
    asset_checks=[profiles_contract, history_contract, settings_contract, customer_360_contract],
    jobs=[usual],
    resources={"io_manager": DuckDBPandasIOManager(database=dg.EnvVar("BENCH_USUAL_DB"))},
)


def usual_job() -> dg.JobDefinition:
    """The job over all four assets and their checks, for dg.reconstructable."""
    return defs.resolve_job_def("usual")

"""Consumer impact: which products a breaking change breaks, read from the workspace's products
(their `@product(inputs=...)` and the SQL they pass to ctx.sql, parsed with sqlglot), never by
importing their code."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT

from mesh_platform import consumers, contract_diff, registry

HISTORY = ROOT / "domains/orders/contracts/history.odcs.yaml"
C360 = ROOT / "mesh_platform/federation/contracts/customer_360.odcs.yaml"
LIFETIME = """      - name: lifetime_value
        logicalType: number
        physicalType: DECIMAL(18,2)
        required: true
        description: Sum of completed orders' line totals.
        quality:
          - name: lifetime_value_not_negative
            type: sql
            query: SELECT count(*) FROM ${object} WHERE ${property} < 0
            mustBe: 0
"""
LAST_ORDER = "      - {name: last_order_at, logicalType: timestamp, physicalType: TIMESTAMP, required: true}\n"
RECENT = "STRUCT(order_id VARCHAR, ordered_at TIMESTAMP, status VARCHAR, amount DECIMAL(18,2))[]"
AMOUNT_DECL = "            - name: amount\n              logicalType: number\n              physicalType: DECIMAL(18,2)\n"


def diff(path: Path, old: str, new: str) -> contract_diff.Diff:
    return contract_diff.compare(contract_diff.parse(old, path), contract_diff.parse(new, path))


def test_customer_360_reads_every_column_it_builds_from():
    entries = consumers.all_entries()
    schemas = {k: {c.name: c.physical_type for c in e.contract.columns} for k, e in entries.items()}
    used = consumers.usages(entries["federation/customer_360"], schemas)
    assert {k: u.columns for k, u in used.items()} == {
        "customer/profiles": {c.name for c in entries["customer/profiles"].contract.columns},
        "orders/history": {c.name for c in entries["orders/history"].contract.columns},
        "preferences/settings": {c.name for c in entries["preferences/settings"].contract.columns},
    }


def test_removing_lifetime_value_names_its_consumers_and_their_owners():
    text = HISTORY.read_text()
    impacts = consumers.impacts(diff(HISTORY, text, text.replace(LIFETIME, "")), consumers.all_entries())
    assert [(i.consumer, i.owner, i.location, i.columns, i.change.message) for i in impacts] == [
        ("customer/insights", "customer-analytics", "customer", ("lifetime_value",), "removes column lifetime_value"),
        ("federation/customer_360", "platform-team", "federation", ("lifetime_value",), "removes column lifetime_value"),
    ]
    assert str(impacts[1]) == "federation/customer_360 (owner platform-team, location federation) reads lifetime_value"


def test_removing_a_column_no_consumer_reads_is_breaking_but_names_no_consumer():
    text = HISTORY.read_text()
    old = text.replace(LAST_ORDER, LAST_ORDER + "      - {name: loyalty_tier, logicalType: string, physicalType: VARCHAR}\n")
    d = diff(HISTORY, old, text)
    assert [c.message for c in d.breaking] == ["removes column loyalty_tier"]
    assert consumers.impacts(d, consumers.all_entries()) == []


def test_renaming_a_field_inside_a_struct_is_found():
    text = HISTORY.read_text()
    new = text.replace(RECENT, RECENT.replace("amount DECIMAL", "total DECIMAL")).replace(
        AMOUNT_DECL, AMOUNT_DECL.replace("amount", "total"))
    d = diff(HISTORY, text, new)
    assert [(c.rule, c.column) for c in d.breaking] == [("field-renamed", "recent_orders.amount")]
    (impact,) = consumers.impacts(d, consumers.all_entries())
    # customer_360 passes recent_orders on whole: every field of it is read.
    assert (impact.consumer, impact.columns) == ("federation/customer_360", ("recent_orders",))


def test_a_grant_change_concerns_only_the_readers_location():
    text = HISTORY.read_text()
    masked = text.replace("  - {role: federation, access: read}\n",
                          "  - {role: federation, access: read, customProperties: [{property: mask, value: [order_count]}]}\n")
    (impact,) = consumers.impacts(diff(HISTORY, text, masked), consumers.all_entries())
    assert (impact.consumer, impact.columns, impact.change.rule) == ("federation/customer_360", ("order_count",), "grant-masked")
    elsewhere = text.replace("  - {role: federation, access: read}\n",
                             "  - {role: federation, access: read}\n  - {role: marketing, access: read}\n")
    gone = diff(HISTORY, elsewhere, text)
    assert [c.rule for c in gone.breaking] == ["grant-removed"]
    assert consumers.impacts(gone, consumers.all_entries()) == []  # nobody in 'marketing' reads it


# A consumer of customer_360 in a location of its own, reading struct fields in every way SQL can.
MARKETING_CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:mesh:marketing:{name}
version: 1.0.0
status: active
domain: marketing
description:
  purpose: A consumer of customer_360, for the impact analysis.
team:
  name: marketing-team
schema:
  - name: {name}
    physicalType: table
    properties:
      - {{name: customer_id, logicalType: string, physicalType: VARCHAR, primaryKey: true}}
"""
PRODUCTS = '''from mesh_platform import product


@product(inputs=["federation/customer_360", "orders/history"])
def campaign(ctx):
    ctx.product("federation/customer_360").to_view("c360")
    hist = ctx.product("orders/history")
    hist.to_view("h")
    return ctx.sql(
        """
        WITH big AS (
            SELECT c.customer_id, c.profile.email AS email, c.order_history.recent_orders[1].amount AS last_amount,
                   struct_extract(c.preferences, 'channel') AS channel, c.preferences['language'] AS language
            FROM c360 c
            WHERE (unnest(c.order_history.recent_orders)).status = 'completed'
        )
        SELECT b.customer_id, b.email, b.last_amount, b.channel, b.language, h.order_count
        FROM big b JOIN h USING (customer_id)
        """
    )


@product(inputs=["federation/customer_360"])
def everything(ctx):
    ctx.product("federation/customer_360").to_view("c")
    return ctx.sql("SELECT * FROM c")


@product(inputs=["orders/history"])
def dynamic(ctx):
    ctx.product("orders/history").to_view("h")
    column = "lifetime_value"
    return ctx.sql(f"SELECT customer_id, {column} FROM h")


@product(inputs=["orders/history", "customer/profiles"])
def pythonic(ctx):
    ctx.product("customer/profiles").to_view("p")
    rows = ctx.product("orders/history").select("customer_id").fetchall()
    return ctx.sql("SELECT customer_id FROM p")
'''


def marketing(tmp_path: Path) -> dict[str, registry.Entry]:
    folder = tmp_path / "marketing"
    (folder / "contracts").mkdir(parents=True)
    (folder / "products").mkdir()
    for name in ("campaign", "everything", "dynamic", "pythonic"):
        (folder / "contracts" / f"{name}.odcs.yaml").write_text(MARKETING_CONTRACT.format(name=name))
    (folder / "products" / "campaign.py").write_text(PRODUCTS)
    return registry.location_entries(folder, "marketing")


def test_struct_fields_are_resolved_to_the_nested_field(tmp_path):
    entries = consumers.all_entries() | marketing(tmp_path)
    schemas = {k: {c.name: c.physical_type for c in e.contract.columns} for k, e in entries.items()}
    used = consumers.usages(entries["marketing/campaign"], schemas)
    assert used["federation/customer_360"].columns == {
        "customer_id", "profile.email", "order_history.recent_orders.amount", "order_history.recent_orders.status",
        "preferences.channel", "preferences.language",
    }
    assert used["orders/history"].columns == {"customer_id", "order_count"}

    text = C360.read_text()

    profile_type = "STRUCT(first_name VARCHAR, last_name VARCHAR, email VARCHAR, country VARCHAR,"
    decl = lambda f: next(line for line in text.splitlines(keepends=True) if line.startswith(f"          - {{name: {f},"))  # noqa: E731
    no_country = text.replace(profile_type, profile_type.replace(" country VARCHAR,", "")).replace(decl("country"), "")
    no_email = text.replace(profile_type, profile_type.replace(" email VARCHAR,", "")).replace(decl("email"), "")
    by_consumer = lambda d: {(i.consumer, i.columns) for i in consumers.impacts(d, entries)}  # noqa: E731
    # Nobody reads profile.country but `everything` (SELECT *: every column).
    assert by_consumer(diff(C360, text, no_country)) == {("marketing/everything", ("profile",))}
    assert by_consumer(diff(C360, text, no_email)) == {
        ("marketing/campaign", ("profile.email",)), ("marketing/everything", ("profile",)),
    }


def test_what_the_analysis_cannot_see_counts_as_read(tmp_path):
    entries = consumers.all_entries() | marketing(tmp_path)
    schemas = {k: {c.name: c.physical_type for c in e.contract.columns} for k, e in entries.items()}
    dynamic = consumers.usages(entries["marketing/dynamic"], schemas)["orders/history"]
    assert dynamic.columns is None and dynamic.notes == ["SQL built at run time"]
    assert dynamic.reads("order_count") == ["*"]
    pythonic = consumers.usages(entries["marketing/pythonic"], schemas)
    assert pythonic["orders/history"].columns is None
    assert pythonic["orders/history"].notes == ["read in Python outside SQL"]
    assert pythonic["customer/profiles"].columns == {"customer_id"}
    text = HISTORY.read_text()
    impacts = consumers.impacts(diff(HISTORY, text, text.replace(LIFETIME, "")), entries)
    assert {(i.consumer, i.columns) for i in impacts} == {
        ("customer/insights", ("lifetime_value",)),
        ("federation/customer_360", ("lifetime_value",)),
        ("marketing/dynamic", ("*",)),
        ("marketing/pythonic", ("*",)),
    }  # campaign reads history's customer_id and order_count only


def test_a_consumer_pinned_to_the_new_major_has_moved(tmp_path):
    entries = consumers.all_entries()
    moved = registry.Entry("x/moved", "x", entries["federation/customer_360"].contract, None, ("orders/history@2",))
    old = registry.Entry("x/old", "x", entries["federation/customer_360"].contract, None, ("orders/history@1",))
    picked = consumers.consumers_of("orders/history", {"m": moved, "o": old} | entries, new_major=2)
    assert [e.key for e in picked] == ["customer/insights", "federation/customer_360", "x/old"]

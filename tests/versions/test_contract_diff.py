"""Breaking-change detection (mesh_platform/contract_diff.py): a table of changes to the shipped
contracts, each with its verdict, checked against the diff function and once through the real
`mesh contract diff --base` on a temporary git repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from mesh_platform import contract_diff

PROFILES = ROOT / "domains/customer/contracts/profiles.odcs.yaml"
HISTORY = ROOT / "domains/orders/contracts/history.odcs.yaml"
SETTINGS = ROOT / "domains/preferences/contracts/settings.odcs.yaml"
C360 = ROOT / "mesh_platform/federation/contracts/customer_360.odcs.yaml"

ORDER_COUNT = "        physicalType: BIGINT\n        required: true\n        quality:\n"
RECENT = "STRUCT(order_id VARCHAR, ordered_at TIMESTAMP, status VARCHAR, amount DECIMAL(18,2))[]"
AMOUNT_DECL = "            - name: amount\n              logicalType: number\n              physicalType: DECIMAL(18,2)\n"
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
SEGMENT_RULE = "{name: segment_is_known, metric: invalidValues, arguments: {validValues: [consumer, smb, enterprise]}, mustBe: 0}"
CHANNEL_RULE = "{name: channel_is_known, metric: invalidValues, arguments: {validValues: [email, sms, push, none]}, mustBe: 0}"
FEDERATION_ROLE = "  - {role: federation, access: read, description: The platform's federated products.}\n"
HISTORY_ROLE = "  - {role: federation, access: read}\n"
EMAIL = "        classification: PII\n        description: Lower-cased, trimmed.\n"
PROFILE_TYPE = "STRUCT(first_name VARCHAR, last_name VARCHAR, email VARCHAR, country VARCHAR, segment VARCHAR, signup_date DATE, updated_at TIMESTAMP)"


def edits(*pairs: tuple[str, str]):
    def apply(text: str) -> str:
        for old, new in pairs:
            assert text.count(old) == 1, f"the shipped contract changed: {old!r} is not in it exactly once"
            text = text.replace(old, new)
        return text
    return apply


def same(text: str) -> str:
    return text


# id -> (contract, the base version (edits of the shipped one), the new version, {rule: breaking} expected,
#        the column path a finding names (or None))
CASES = {
    "column-removed": (HISTORY, same, edits((LIFETIME, "")), {"column-removed": True}, "lifetime_value"),
    "column-renamed": (HISTORY, same, edits(("name: completed_order_count,", "name: completed_orders,")),
                       {"column-renamed": True}, "completed_order_count"),
    "type-narrowed": (HISTORY, same, edits((ORDER_COUNT, ORDER_COUNT.replace("BIGINT", "INTEGER"))),
                      {"type-narrowed": True}, "order_count"),
    "type-changed": (PROFILES, same, edits(("{name: signup_date, logicalType: date, physicalType: DATE,",
                                            "{name: signup_date, logicalType: date, physicalType: VARCHAR,")),
                     {"type-changed": True}, "signup_date"),
    "varchar-length-narrowed": (PROFILES, same, edits(("        physicalType: VARCHAR\n        description: ISO",
                                                       "        physicalType: VARCHAR(2)\n        description: ISO")),
                                {"type-narrowed": True}, "country"),
    "integer-widened-to-bigint": (HISTORY, edits((ORDER_COUNT, ORDER_COUNT.replace("BIGINT", "INTEGER"))), same,
                                  {"type-widened": False}, "order_count"),
    "decimal-widened": (HISTORY, same, edits(("        physicalType: DECIMAL(18,2)\n        required: true\n        description: Sum",
                                              "        physicalType: DECIMAL(38,2)\n        required: true\n        description: Sum")),
                        {"type-widened": False}, "lifetime_value"),
    "varchar-length-widened": (PROFILES, edits(("        physicalType: VARCHAR\n        description: ISO",
                                                "        physicalType: VARCHAR(2)\n        description: ISO")), same,
                               {"type-widened": False}, "country"),
    "made-required": (PROFILES, same, edits(("        physicalType: VARCHAR\n        description: ISO",
                                             "        physicalType: VARCHAR\n        required: true\n        description: ISO")),
                      {"column-required": True}, "country"),
    "made-optional": (HISTORY, same, edits((ORDER_COUNT, ORDER_COUNT.replace("        required: true\n", ""))),
                      {"column-optional": False}, "order_count"),
    "made-unique": (PROFILES, same, edits((EMAIL, EMAIL + "        unique: true\n")), {"column-unique": True}, "email"),
    "grain-changed": (SETTINGS, same, edits(("      - name: channel\n        logicalType: string\n        physicalType: VARCHAR\n",
                                             "      - name: channel\n        logicalType: string\n        physicalType: VARCHAR\n"
                                             "        primaryKey: true\n")),
                      {"grain-changed": True}, None),
    "optional-column-added": (SETTINGS, same, edits(("      - {name: language,", "      - {name: timezone, logicalType: string, "
                                                     "physicalType: VARCHAR}\n      - {name: language,")),
                              {"column-added": False}, "timezone"),
    "required-column-added": (SETTINGS, same, edits(("      - {name: language,", "      - {name: timezone, logicalType: string, "
                                                     "physicalType: VARCHAR, required: true}\n      - {name: language,")),
                              {"column-added-required": True}, "timezone"),
    "valid-values-shrink": (PROFILES, same, edits((SEGMENT_RULE, SEGMENT_RULE.replace("smb, ", ""))),
                            {"rule-tightened": True}, "segment"),
    "valid-values-grow": (SETTINGS, same, edits((CHANNEL_RULE, CHANNEL_RULE.replace("none]", "none, post]"))),
                          {"rule-loosened": False}, "channel"),
    "bound-stricter": (HISTORY, same, edits(("kwargs: {min_value: 1}", "kwargs: {min_value: 2}")),
                       {"rule-tightened": True}, "order_count"),
    "bound-looser": (HISTORY, same, edits(("      - {name: has_customers, metric: rowCount, mustBeGreaterThan: 0}",
                                           "      - {name: has_customers, metric: rowCount, mustBeGreaterOrEqualTo: 0}")),
                     {"rule-loosened": False}, None),
    "sql-bound-stricter": (HISTORY, edits(("            mustBe: 0\n", "            mustBeLessOrEqualTo: 10\n")), same,
                           {"rule-tightened": True}, "lifetime_value"),
    "severity-warning-to-error": (PROFILES, edits((SEGMENT_RULE, SEGMENT_RULE.replace("mustBe: 0}", "mustBe: 0, severity: warning}"))),
                                  same, {"rule-severity-raised": True}, "segment"),
    "severity-error-to-warning": (PROFILES, same, edits((SEGMENT_RULE, SEGMENT_RULE.replace("mustBe: 0}", "mustBe: 0, severity: warning}"))),
                                  {"rule-severity-lowered": False}, "segment"),
    "non-blocking-rule-changed": (PROFILES, edits((SEGMENT_RULE, SEGMENT_RULE.replace("mustBe: 0}", "mustBe: 0, severity: warning}"))),
                                  edits((SEGMENT_RULE, SEGMENT_RULE.replace("smb, ", "").replace("mustBe: 0}", "mustBe: 0, severity: warning}"))),
                                  {"rule-changed": False}, "segment"),
    "blocking-rule-added": (SETTINGS, same, edits(("      - {name: has_customers, metric: rowCount, mustBeGreaterThan: 0}\n",
                                                   "      - {name: has_customers, metric: rowCount, mustBeGreaterThan: 0}\n"
                                                   "      - {name: many_customers, metric: rowCount, mustBeGreaterThan: 100}\n")),
                            {"rule-added-blocking": True}, None),
    "warning-rule-added": (SETTINGS, same, edits(("      - {name: has_customers, metric: rowCount, mustBeGreaterThan: 0}\n",
                                                  "      - {name: has_customers, metric: rowCount, mustBeGreaterThan: 0}\n"
                                                  "      - {name: many_customers, metric: rowCount, mustBeGreaterThan: 100, severity: warning}\n")),
                           {"rule-added": False}, None),
    "rule-removed": (PROFILES, same, edits(("        quality:\n          - " + SEGMENT_RULE + "\n", "")),
                     {"rule-removed": False}, "segment"),
    "volume-check-tightened": (SETTINGS, same, edits(("tags: [preferences]\n", "tags: [preferences]\ncustomProperties:\n"
                                                      "  - {property: volumeMaxDropPercent, value: 5}\n")),
                               {"rule-tightened": True}, None),
    "latency-shorter": (HISTORY, same, edits(("value: 26, unit: h", "value: 12, unit: h")), {"sla-tightened": True}, None),
    "latency-longer": (HISTORY, same, edits(("value: 26, unit: h", "value: 2, unit: d")), {"sla-loosened": False}, None),
    "grant-removed": (HISTORY, same, edits((HISTORY_ROLE, "  - {role: marketing, access: read}\n")),
                      {"grant-removed": True, "grant-added": False}, None),
    "grant-added": (HISTORY, same, edits((HISTORY_ROLE, HISTORY_ROLE + "  - {role: marketing, access: read}\n")),
                    {"grant-added": False}, None),
    "column-masked-for-reader": (PROFILES, same, edits((FEDERATION_ROLE, FEDERATION_ROLE.replace(
        "products.}", "products., customProperties: [{property: mask, value: [email]}]}"))),
        {"grant-masked": True}, "email"),
    "column-excluded-for-reader": (PROFILES, same, edits((FEDERATION_ROLE, FEDERATION_ROLE.replace(
        "products.}", "products., customProperties: [{property: exclude, value: [first_name]}]}"))),
        {"grant-excluded": True}, "first_name"),
    "column-unmasked-for-reader": (PROFILES, edits((FEDERATION_ROLE, FEDERATION_ROLE.replace(
        "products.}", "products., customProperties: [{property: mask, value: [email]}]}"))), same,
        {"grant-widened": False}, "email"),
    "description-changed": (HISTORY, same, edits(("purpose: One row per customer who ever ordered",
                                                   "purpose: Exactly one row per customer who ever ordered")),
                            {"description-changed": False}, None),
    "tags-changed": (HISTORY, same, edits(("tags: [orders]", "tags: [orders, finance]")), {"tags-changed": False}, None),
    "struct-field-removed": (HISTORY, same, edits(
        (RECENT, RECENT.replace(" status VARCHAR,", "")),
        ('            - {name: status, logicalType: string, physicalType: VARCHAR, description: "completed, shipped, pending, cancelled or refunded"}\n', ""),
    ), {"field-removed": True}, "recent_orders.status"),
    "struct-field-renamed": (HISTORY, same, edits((RECENT, RECENT.replace("amount DECIMAL", "total DECIMAL")),
                                                  (AMOUNT_DECL, AMOUNT_DECL.replace("amount", "total"))),
                             {"field-renamed": True}, "recent_orders.amount"),
    "struct-field-narrowed": (HISTORY, same, edits((RECENT, RECENT.replace("DECIMAL(18,2)", "DECIMAL(10,2)")),
                                                   (AMOUNT_DECL, AMOUNT_DECL.replace("DECIMAL(18,2)", "DECIMAL(10,2)"))),
                              {"type-narrowed": True}, "recent_orders.amount"),
    "struct-field-added": (HISTORY, same, edits((RECENT, RECENT.replace("amount DECIMAL", "currency VARCHAR, amount DECIMAL")),
                                                (AMOUNT_DECL, "            - {name: currency, logicalType: string}\n" + AMOUNT_DECL)),
                           {"field-added": False}, "recent_orders.currency"),
    "nested-struct-field-removed": (C360, same, edits(
        (PROFILE_TYPE, PROFILE_TYPE.replace(" email VARCHAR,", "")),
        ('          - {name: email, logicalType: string, physicalType: VARCHAR, description: "Lower-cased, trimmed."}\n', ""),
    ), {"field-removed": True}, "profile.email"),
    "nested-list-field-widened": (C360, same, edits(
        ("STRUCT(order_count BIGINT,", "STRUCT(order_count HUGEINT,"),
        ("{name: order_count, logicalType: integer, physicalType: BIGINT,", "{name: order_count, logicalType: integer, physicalType: HUGEINT,"),
    ), {"type-widened": False}, "order_history.order_count"),
}


def versions(case: str) -> tuple[Path, str, str]:
    path, old, new, _, _ = CASES[case]
    shipped = path.read_text()
    return path, old(shipped), new(shipped)


def check(case: str, changes: list[dict]) -> None:
    _, _, _, expected, column = CASES[case]
    found = {(c["rule"], c["breaking"]) for c in changes}
    for rule, breaking in expected.items():
        assert (rule, breaking) in found, f"{case}: expected {rule} ({'breaking' if breaking else 'compatible'}), got {found}"
    breaking = any(expected.values())
    assert any(c["breaking"] for c in changes) == breaking, f"{case}: {changes}"
    if not breaking:  # a compatible change must not hide a breaking finding
        assert not [c for c in changes if c["breaking"]]
    if column is not None:
        named = {c["column"] for c in changes if c["rule"] in expected}
        assert column in named, f"{case}: {named}"
    for c in changes:
        assert c["file"] and c["field"], c


def test_the_table_covers_every_rule():
    assert len(CASES) >= 20
    verdicts = [v for case in CASES.values() for v in case[3].values()]
    assert verdicts.count(True) >= 10 and verdicts.count(False) >= 10


@pytest.mark.parametrize("case", list(CASES))
def test_change_verdict(case, tmp_path):
    path, old, new = versions(case)
    assert old != new
    diff = contract_diff.compare(contract_diff.parse(old, path), contract_diff.parse(new, path))
    check(case, [c.as_dict() for c in diff.changes])
    # The gate: breaking needs the next major version, compatible needs none.
    if diff.breaking:
        assert diff.problem() == (
            f"1.0.0 -> 1.0.0 {'; '.join(c.message for c in diff.breaking)}: breaking; release it as 2.0.0"
        )
        bumped = contract_diff.parse(new.replace("version: 1.0.0\n", "version: 2.0.0\n"), path)
        assert contract_diff.compare(contract_diff.parse(old, path), bumped).problem() is None
    else:
        assert diff.problem() is None


def test_no_change_no_finding():
    for path in (PROFILES, HISTORY, SETTINGS, C360):
        v = contract_diff.read(path)
        assert contract_diff.compare(v, v).changes == ()


def test_findings_name_file_field_and_rule():
    path, old, new = versions("struct-field-narrowed")
    (change,) = contract_diff.compare(contract_diff.parse(old, path), contract_diff.parse(new, path)).changes
    assert str(change) == (
        f"{path}: schema[0].properties[6].items.properties[3].physicalType: [breaking] type-narrowed: "
        "narrows field recent_orders.amount from DECIMAL(18,2) to DECIMAL(10,2)"
    )
    path, old, new = versions("column-removed")
    removed = contract_diff.compare(contract_diff.parse(old, path), contract_diff.parse(new, path)).breaking
    assert [(c.field, c.rule, c.column) for c in removed] == [("schema[0].properties[3]", "column-removed", "lifetime_value")]


def test_a_major_bump_with_compatible_changes_is_fine():
    path, old, new = versions("optional-column-added")
    bumped = contract_diff.parse(new.replace("version: 1.0.0\n", "version: 2.0.0\n"), path)
    diff = contract_diff.compare(contract_diff.parse(old, path), bumped)
    assert not diff.breaking and diff.problem() is None


def git(repo: Path, *args: str) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def test_every_case_through_mesh_contract_diff_against_git(tmp_path):
    """One real `mesh contract diff --base HEAD --json` over a temporary git repository holding
    each case's base version committed and its new version in the working tree."""
    repo = tmp_path / "repo"
    (repo / "cases").mkdir(parents=True)
    git(repo, "init", "-q")
    files = {}
    for case in CASES:
        path, old, new = versions(case)
        files[case] = repo / "cases" / f"{case}.odcs.yaml"
        files[case].write_text(old)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base versions")
    for case in CASES:
        files[case].write_text(versions(case)[2])
    (repo / "cases" / "brand-new.odcs.yaml").write_text(HISTORY.read_text())

    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")} | {"MESH_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mesh")), "contract", "diff", "--base", "HEAD", "--json",
         *[str(f) for f in files.values()], str(repo / "cases" / "brand-new.odcs.yaml")],
        cwd=repo, env=env, capture_output=True, text=True,
    )
    assert done.returncode == 1, done.stderr  # breaking changes without a major bump
    rows = {Path(r["contract"]).name.removesuffix(".odcs.yaml"): r for r in json.loads(done.stdout)}
    assert rows.pop("brand-new")["note"] == "new at HEAD: nothing to compare"
    assert set(rows) == set(CASES)
    for case, row in rows.items():
        check(case, row["changes"])
        assert row["base"] == f"HEAD:cases/{case}.odcs.yaml"
        breaking = any(CASES[case][3].values())
        assert row["breaking"] == breaking
        assert bool(row["problems"]) == breaking
        if breaking:
            assert row["problems"][0].endswith("breaking; release it as 2.0.0")

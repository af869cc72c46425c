"""The platform's policies (mesh_platform/policies.yaml): each fires on a contract that breaks it,
names the file, field and policy, stays quiet on the shipped contracts, and can be waived for one
product with a reason and an expiry date, never past it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from conftest import ROOT

from mesh_platform import policies
from mesh_platform.contracts import load_contract
from mesh_platform.location import location_definitions

PROFILES = ROOT / "domains/customer/contracts/profiles.odcs.yaml"
SHIPPED = sorted(ROOT.glob("domains/*/contracts/*.odcs.yaml")) + sorted(ROOT.glob("mesh_platform/*/contracts/*.odcs.yaml"))
TODAY = date(2026, 11, 27)


C360 = ROOT / "mesh_platform/federation/contracts/customer_360.odcs.yaml"


def variant(tmp_path: Path, old: str, new: str, source: Path = PROFILES) -> Path:
    text = source.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / source.name
    path.write_text(text.replace(old, new))
    return path


# policy -> (what to change in profiles' contract, field named, words in the message)
BREAKS = {
    "description": (
        "  purpose: One row per customer, the current state of the CRM record, cleaned.\n", "",
        "description.purpose", "no description",
    ),
    "blocking-quality-rule": (  # customer_360's only rule, made a warning
        "        mustBe: 0\n", "        mustBe: 0\n        severity: warning\n",
        "quality", "no blocking quality rule", C360,
    ),
    "semantic-version": ("version: 1.0.0\n", "version: '1.0'\n", "version", "'1.0' is not MAJOR.MINOR.PATCH"),
    "freshness-sla": (
        "slaProperties:\n  - {property: latency, value: 26, unit: h, description: Refreshed daily at 02:00 UTC.}\n", "",
        "slaProperties", "no latency SLA",
    ),
    "personal-data-classified": (
        "      - {name: last_name, logicalType: string, physicalType: VARCHAR, classification: PII}",
        "      - {name: last_name, logicalType: string, physicalType: VARCHAR}",
        "schema[0].properties[2].classification", "column 'last_name' looks like personal data (last_name)",
    ),
    "pii-readers": (
        "  - {role: federation, access: read, description: The platform's federated products.}\n",
        "  - {role: federation, access: read, description: The platform's federated products.}\n"
        "  - {role: orders, access: read}\n",
        "roles[1]", "'orders' would read classified columns ['email', 'first_name', 'last_name'] in the clear",
    ),
}


@pytest.mark.parametrize("policy", sorted(BREAKS))
def test_each_policy_fires_on_a_contract_that_breaks_it(tmp_path, policy):
    old, new, field, words, *source = BREAKS[policy]
    path = variant(tmp_path, old, new, *source)
    [violation] = policies.evaluate(load_contract(path), TODAY)
    assert (violation.policy, violation.severity, violation.path, violation.field) == (policy, "error", str(path), field)
    assert words in violation.message
    assert str(violation).startswith(f"{path}: {field}: [error] policy {policy}: ")


def test_masking_the_personal_columns_satisfies_pii_readers(tmp_path):
    path = variant(
        tmp_path,
        "  - {role: federation, access: read, description: The platform's federated products.}\n",
        "  - {role: federation, access: read, description: The platform's federated products.}\n"
        "  - role: orders\n    access: read\n    customProperties:\n"
        "      - {property: mask, value: [email]}\n      - {property: exclude, value: [first_name, last_name]}\n",
    )
    assert policies.evaluate(load_contract(path), TODAY) == []


@pytest.mark.parametrize("contract", SHIPPED, ids=lambda p: p.stem)
def test_the_shipped_contracts_break_no_policy(contract):
    assert policies.evaluate(load_contract(contract), TODAY) == []


def waived(tmp_path: Path, waiver: str) -> Path:
    old, new, *_ = BREAKS["freshness-sla"]
    path = variant(tmp_path, old, new)
    path.write_text(path.read_text() + f"customProperties:\n  - property: policyWaivers\n    value:\n      - {waiver}\n")
    return path


def test_a_waiver_with_reason_and_expiry_silences_its_policy_until_it_expires(tmp_path):
    path = waived(tmp_path, "{policy: freshness-sla, reason: Refreshed by hand after each audit, expires: 2027-03-31}")
    contract = load_contract(path)
    assert policies.evaluate(contract, TODAY) == []
    # Past its date the waiver is a violation, and the policy it covered applies again.
    expired, policy = policies.evaluate(contract, date(2027, 4, 1))
    assert (expired.policy, expired.field) == ("waiver", "customProperties.policyWaivers[0]")
    assert policy.policy == "freshness-sla"
    assert "waiver of freshness-sla expired on 2027-03-31" in expired.message


@pytest.mark.parametrize("waiver, words", [
    ("{policy: freshness-sla, expires: 2027-03-31}", "needs a reason"),
    ("{policy: freshness-sla, reason: later}", "needs an expiry date"),
    ("{policy: no-such-policy, reason: x, expires: 2027-03-31}", "unknown policy 'no-such-policy'"),
])
def test_a_waiver_without_reason_expiry_or_known_policy_is_a_violation(tmp_path, waiver, words):
    violations = policies.evaluate(load_contract(waived(tmp_path, waiver)), TODAY)
    assert {v.policy for v in violations} == {"waiver", "freshness-sla"}
    assert any(words in v.message for v in violations)


def test_a_policy_violation_stops_only_its_location_at_load(tmp_path):
    folder = tmp_path / "customer"
    shutil.copytree(ROOT / "domains/customer", folder, ignore=shutil.ignore_patterns("__pycache__"))
    contract = folder / "contracts/profiles.odcs.yaml"
    contract.write_text(contract.read_text().replace("version: 1.0.0\n", "version: '1.0'\n"))
    with pytest.raises(policies.PolicyError) as info:
        location_definitions(folder)
    assert f"{contract}: version: [error] policy semantic-version" in str(info.value)
    saved = {k: v for k, v in sys.modules.items() if k.startswith("mesh_products.")}
    assert location_definitions(ROOT / "domains/orders") is not None
    sys.modules.update(saved)


def test_mesh_check_passes_on_the_shipped_workspace(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")} | {"MESH_HOME": str(tmp_path)}
    done = subprocess.run([str(Path(sys.executable).with_name("mesh")), "check"], env=env, capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["customer: ok", "orders: ok", "preferences: ok", "federation: ok"]

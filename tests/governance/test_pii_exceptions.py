"""A reader allowed personal data of one product only (policies.yaml pii_reader_exceptions): the
seed's domain-team reads customer_360 in BigQuery, profile included, and nothing else in the clear."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from conftest import ROOT

from mesh_platform import policies
from mesh_platform.contracts import load_contract

PROFILES = ROOT / "domains/customer/contracts/profiles.odcs.yaml"
C360 = ROOT / "mesh_platform/federation/contracts/customer_360.odcs.yaml"
TODAY = date(2026, 11, 27)


def test_domain_team_reads_customer_360_in_the_clear_by_a_reasoned_exception():
    rules = policies.rules()
    assert "domain-team" not in rules.pii_readers
    assert rules.allows_pii("domain-team", "federation/customer_360")
    contract = load_contract(C360)
    assert [g.reader for g in contract.grants] == ["domain-team"]
    assert contract.column("profile").classification == "PII"
    assert policies.evaluate(contract, TODAY) == []


def test_the_exception_does_not_reach_other_products(tmp_path: Path):
    text = PROFILES.read_text()
    role = "  - {role: federation, access: read, description: The platform's federated products.}\n"
    path = tmp_path / PROFILES.name
    path.write_text(text.replace(role, role + "  - {role: domain-team, access: read}\n"))
    [violation] = policies.evaluate(load_contract(path), TODAY)
    assert (violation.policy, violation.field) == ("pii-readers", "roles[1]")
    assert "'domain-team' would read classified columns ['email', 'first_name', 'last_name'] in the clear" in violation.message
    # Masked for it, the grant is fine without any exception.
    path.write_text(text.replace(role, role + "  - role: domain-team\n    access: read\n    customProperties:\n"
                                 "      - {property: mask, value: [first_name, last_name, email]}\n"))
    assert policies.evaluate(load_contract(path), TODAY) == []


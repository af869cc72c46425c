"""The platform's policies (policies.yaml), evaluated on product contracts.

Each policy in the file has a check here of the same id; the file holds what a reader needs
(ids, severities, descriptions, parameters), this module only how each is checked. Waivers live
in the waived product's own contract (customProperties policyWaivers), so the domain that owns
the product owns the exception, in review like any other change to it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date
from importlib import resources

from mesh_platform import strict_yaml
from mesh_platform.contracts import Contract

WAIVERS = "policyWaivers"
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class Policy:
    id: str
    severity: str  # "error" or "warning"
    description: str


@dataclass(frozen=True)
class Violation:
    policy: str
    severity: str
    path: str  # the contract file
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: [{self.severity}] policy {self.policy}: {self.message}"


@dataclass(frozen=True)
class Rules:
    policies: tuple[Policy, ...]
    pii_readers: tuple[str, ...]
    personal_name_parts: tuple[str, ...]
    pii_exceptions: frozenset[tuple[str, str]] = frozenset()  # (reader, product) allowed personal data

    def allows_pii(self, reader: str, product: str) -> bool:
        return reader in self.pii_readers or (reader, product) in self.pii_exceptions


@functools.cache
def rules() -> Rules:
    data = strict_yaml.load((resources.files("mesh_platform") / "policies.yaml").read_text())
    policies = tuple(Policy(p["id"], p["severity"], p["description"]) for p in data["policies"])
    unknown = [p.id for p in policies if p.id not in _CHECKS]
    if unknown:
        raise ValueError(f"policies.yaml: policies without a check: {unknown}")
    exceptions = set()
    for i, e in enumerate(data.get("pii_reader_exceptions") or []):
        if not isinstance(e, dict) or not e.get("reader") or not e.get("products") or not str(e.get("reason") or "").strip():
            raise ValueError(f"policies.yaml: pii_reader_exceptions[{i}]: a reader, its products and a reason are required")
        exceptions |= {(e["reader"], p) for p in e["products"]}
    return Rules(policies, tuple(data["pii_readers"]), tuple(data["personal_name_parts"]), frozenset(exceptions))


def evaluate(contract: Contract, today: date | None = None) -> list[Violation]:
    """Every violation of `contract`, waived ones left out, broken or expired waivers added."""
    today = today or date.today()
    r = rules()
    by_id = {p.id: p for p in r.policies}
    waivers, out = _waivers(contract, by_id, today)
    for policy in r.policies:
        for field, message in _CHECKS[policy.id](contract, r):
            if policy.id not in waivers:
                out.append(Violation(policy.id, policy.severity, str(contract.path), field, message))
    return out


def _waivers(contract: Contract, by_id: dict[str, Policy], today: date) -> tuple[set[str], list[Violation]]:
    raw = contract.custom.get(WAIVERS) or []
    field = f"customProperties.{WAIVERS}"
    active, problems = set(), []

    def bad(i: int, message: str) -> None:
        problems.append(Violation("waiver", "error", str(contract.path), f"{field}[{i}]", message))

    if not isinstance(raw, list):
        bad(0, "a list of {policy, reason, expires} expected")
        return active, problems
    for i, waiver in enumerate(raw):
        if not isinstance(waiver, dict):
            bad(i, "a mapping {policy, reason, expires} expected")
            continue
        policy, reason, expires = waiver.get("policy"), waiver.get("reason"), waiver.get("expires")
        if isinstance(expires, str):
            try:
                expires = date.fromisoformat(expires)
            except ValueError:
                pass
        if policy not in by_id:
            bad(i, f"unknown policy {policy!r}; policies: {sorted(by_id)}")
        elif not reason or not str(reason).strip():
            bad(i, f"waiver of {policy} needs a reason")
        elif not isinstance(expires, date):
            bad(i, f"waiver of {policy} needs an expiry date (expires: YYYY-MM-DD)")
        elif expires < today:
            bad(i, f"waiver of {policy} expired on {expires.isoformat()}: fix the product or renew the waiver")
        else:
            active.add(policy)
    return active, problems


def _owner(c: Contract, r: Rules):
    if not c.team:
        yield "team.name", "no owning team"


def _description(c: Contract, r: Rules):
    if not (c.purpose or "").strip():
        yield "description.purpose", "no description of what the product is for"


def _blocking_rule(c: Contract, r: Rules):
    if not any(rule.blocking for rule in c.rules):
        yield "quality", "no blocking quality rule (severity error or critical)"


def _semver(c: Contract, r: Rules):
    if not _SEMVER.match(c.version or ""):
        yield "version", f"'{c.version}' is not MAJOR.MINOR.PATCH"


def _freshness(c: Contract, r: Rules):
    if c.freshness is None:
        yield "slaProperties", "no latency SLA (how stale the product may get)"


def _classified(c: Contract, r: Rules):
    for i, col in enumerate(c.columns):
        part = next((p for p in r.personal_name_parts if p in col.name.lower()), None)
        if part and not col.classification:
            yield f"schema[0].properties[{i}].classification", f"column '{col.name}' looks like personal data ({part}) but is not classified"


def _pii_readers(c: Contract, r: Rules):
    classified = {col.name for col in c.columns if col.classification}
    if not classified:
        return
    for i, grant in enumerate(c.grants):
        clear = classified - set(grant.mask) - set(grant.exclude)
        if clear and not r.allows_pii(grant.reader, c.key):
            yield f"roles[{i}]", (
                f"'{grant.reader}' would read classified columns {sorted(clear)} in the clear; readers allowed "
                f"personal data: {list(r.pii_readers)}; mask or exclude them for this reader"
            )


_CHECKS = {
    "owner-team": _owner,
    "description": _description,
    "blocking-quality-rule": _blocking_rule,
    "semantic-version": _semver,
    "freshness-sla": _freshness,
    "personal-data-classified": _classified,
    "pii-readers": _pii_readers,
}


class PolicyError(ValueError):
    """A contract breaks an `error` policy: the location does not load."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        super().__init__("\n".join(str(v) for v in violations))


def enforce(contracts: list[Contract]) -> list[Violation]:
    """Raise PolicyError for violations of error policies; return the warnings."""
    found = [v for c in contracts for v in evaluate(c)]
    errors = [v for v in found if v.severity == "error"]
    if errors:
        raise PolicyError(errors)
    return found

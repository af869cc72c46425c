"""A product contract over time: the contract text each publish records, the version a change
is compared with (the published one, or the one at a git ref), and the gate on versions.

The gate: a contract whose changes against its base are breaking (see mesh_platform.contract_diff)
must carry a new major version ("1.0.0 -> 1.1.0 removes column lifetime_value: breaking; release
it as 2.0.0"); and a new major version may not break a consumer that has not moved to it: every
product whose inputs name the product unversioned, or pinned to an older major (`key@N`) that no
side-by-side product (`name_vN`) still serves, and reads what the change breaks (see
mesh_platform.consumers) stops the release. Breaking changes that leave what consumers read
readable (a tightened rule or SLA, a column made required) need the major version, and list the
consumers, but stop no release once it has it. A compatible change needs no bump; a major bump
without breaking changes is fine.

A code location applies the gate when it loads, against the published version (the contract
text publish records on the table: the `mesh.contract` property, in the environment's catalog:
the local SQL catalog, or Glue in prod; a product published before texts were recorded has no
base, nor has one whose recorded text the platform no longer accepts, nor one on ADLS or
BigQuery); `mesh check --base REF` and `mesh contract diff --base REF` apply it against git.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mesh_platform import contract_diff
from mesh_platform.contract_diff import Diff, Version
from mesh_platform.contracts import Contract, ContractError

if TYPE_CHECKING:
    from mesh_platform.consumers import Impact
    from mesh_platform.registry import Entry
    from mesh_platform.storage import Catalog

CONTRACT_PROPERTY = "mesh.contract"  # table property: the text of the contract last published


def contract_properties(contract: Contract) -> dict[str, str]:
    """The hook for publish: table properties recording the contract text being published, so
    that the next version can be compared with it. Merge into `catalog.publish(properties=...)`."""
    return {CONTRACT_PROPERTY: Path(contract.path).read_text(encoding="utf-8")}


class VersionError(ContractError):
    """A contract change that its version does not allow."""


# -- where a base version comes from ------------------------------------------------------
def published_text(catalog: Catalog, namespace: str, name: str) -> str | None:
    """The contract text recorded with the current published version of a product, or None
    (never published, or published before texts were recorded). A code location asks at every
    load: the quick read first (no pyiceberg), pyiceberg when that cannot answer."""
    meta = catalog.quick_metadata(namespace, name)
    if meta is not None:
        return (meta.get("properties") or {}).get(CONTRACT_PROPERTY)
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        return catalog.load_table(namespace, name).properties.get(CONTRACT_PROPERTY)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None


def published_version(contract: Contract, catalog: Catalog) -> Version | None:
    text = published_text(catalog, contract.domain, contract.name)
    if text is None:
        return None
    return contract_diff.parse(text, contract.path, f"{contract.path} (published)", validate=False)


def git_text(path: Path | str, ref: str) -> str | None:
    """The file at `path` as it is at git `ref`, or None if it does not exist there. Raises
    ValueError when `ref` is not a revision of the file's repository."""
    return _git_show(path, ref)[0]


def _git_show(path: Path | str, ref: str) -> tuple[str | None, str]:
    """(the file's text at `ref` or None, its path in the repository)."""
    path = Path(path).resolve()
    folder = path.parent
    while not folder.exists():
        folder = folder.parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True)

    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise ValueError(f"{path}: not in a git repository ({top.stderr.strip()})")
    if git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise ValueError(f"--base {ref}: not a git revision of {top.stdout.strip()}")
    rel = path.relative_to(Path(top.stdout.strip()).resolve()).as_posix()
    shown = git("show", f"{ref}:{rel}")
    if shown.returncode != 0:
        return None, rel  # a new contract at this ref
    return shown.stdout, rel


def git_version(contract: Contract | Path, ref: str) -> Version | None:
    path = Path(contract.path if isinstance(contract, Contract) else contract)
    text, rel = _git_show(path, ref)
    if text is None:
        return None
    return contract_diff.parse(text, path, f"{ref}:{rel}")


# -- the gate -----------------------------------------------------------------------------
@dataclass
class Verdict:
    """A contract against its base: the changes, the consumers its breaking changes break
    (computed when asked for, or when a major bump makes them decide), and what stops it."""

    diff: Diff
    impacts: list[Impact] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def contract(self) -> Contract:
        return self.diff.new.contract


def judge(base: Version, current: Version | Contract, entries: Callable[[], dict[str, Entry]] | None = None,
          with_impacts: bool = False) -> Verdict:
    """Compare, and apply the gate. `entries` gives the workspace's products (consumers); it is
    called, and the consumers' SQL analysed, only when a breaking change needs it (a major bump,
    or `with_impacts`)."""
    diff = contract_diff.compare(base, current)
    verdict = Verdict(diff)
    problem = diff.problem()
    if problem:
        verdict.problems.append(problem)
    if diff.breaking and entries is not None and (diff.major_bumped or with_impacts):
        from mesh_platform import consumers

        new_major = contract_diff.major(diff.new_version) if diff.major_bumped else None
        verdict.impacts = consumers.impacts(diff, entries(), new_major)
        broken = [i for i in verdict.impacts if i.breaks_reads]
        if diff.major_bumped and broken:
            verdict.problems.append(
                f"{diff.old_version} -> {diff.new_version} breaks consumers that have not moved to "
                f"{contract_diff.major(diff.new_version)}.x: " + "; ".join(sorted({str(i) for i in broken}))
                + f" ({'; '.join(sorted({i.change.message for i in broken}))}); they must stop reading what "
                "changes (or read the new version side by side) before this version is released"
            )
    return verdict


def raise_for(verdict: Verdict) -> None:
    if not verdict.problems:
        return
    diff = verdict.diff
    details = "\n".join(f"  {c.field}: {c.rule}: {c.message}" for c in diff.breaking)
    raise VersionError(
        diff.new.contract.path, "version",
        "; ".join(verdict.problems) + f" (compared with {diff.old.origin})\n{details}",
    )


def check_published(contracts: list[Contract], places: Callable[[Contract], tuple[Catalog, str, str] | None],
                    entries: Callable[[], dict[str, Entry]]) -> None:
    """The gate at location load: each contract against its published version, if recorded
    where `places` says the product's table is ((catalog, namespace, name), or None where no
    contract text is recorded). A catalog that cannot be reached gates nothing: the location
    still loads, and its run will say what is wrong with the cloud. Raise VersionError for the
    first contract it stops."""
    from mesh_platform.cloud import CloudError

    for contract in contracts:
        where = places(contract)
        try:
            text = published_text(*where) if where else None
        except CloudError:
            continue
        if text is None:
            continue
        current = Path(contract.path).read_text(encoding="utf-8")
        if text == current:
            continue
        try:  # it was valid ODCS when it was published: the schema validation is not run again
            base = contract_diff.parse(text, contract.path, f"{contract.path} (published)", validate=False)
        except ContractError:
            # Published under rules the platform has since made stricter: there is no base to
            # hold this version to (`mesh contract diff` reports it), and no reason to stop it.
            continue
        raise_for(judge(base, contract_diff.of(contract, current), entries))

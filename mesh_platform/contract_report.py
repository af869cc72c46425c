"""`mesh contract diff` and `mesh check --base`: every product contract of the workspace against
its base (the published version, or the version at a git ref), its changes classified, the
consumers its breaking changes break, and the gate's verdict."""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mesh_platform import contract_diff, contract_versions
from mesh_platform.contracts import ContractError


@dataclass
class Row:
    """One contract: its verdict against the base, or why there is nothing to compare."""

    path: Path
    key: str | None
    verdict: contract_versions.Verdict | None = None
    note: str | None = None  # no base, or an error

    @property
    def failed(self) -> bool:
        return bool(self.verdict and self.verdict.problems)


def workspace_contracts(workspace: Path | None = None) -> tuple[list[Path], list[str]]:
    """Every product contract file of the workspace's locations, and errors for folders that
    cannot be listed."""
    from mesh_platform.workspace import WORKSPACE, locations

    paths, errors = [], []
    try:
        locs = locations(workspace or WORKSPACE)
    except (OSError, KeyError, TypeError) as exc:
        return [], [f"{workspace or WORKSPACE}: {exc}"]
    for loc in locs.values():
        paths += sorted((loc.path.parent / "contracts").glob("*.odcs.yaml"))
    return paths, errors


def compare_all(paths: list[Path], base: str | None, catalog_home: Path | None, workspace: Path | None = None,
                with_impacts: bool = True) -> list[Row]:
    """Each contract file against its base: git `base` if given, else the published version in
    the catalog under `catalog_home`."""
    from mesh_platform.storage import Catalog

    entries = functools.cache(lambda: _entries(workspace))
    catalog = Catalog(catalog_home) if catalog_home is not None else None
    rows = []
    for path in paths:
        try:
            current = contract_diff.read(path)
        except (ContractError, OSError) as exc:
            rows.append(Row(path, None, note=f"does not load: {exc}"))
            continue
        contract = current.contract
        try:
            if base is not None:
                old = contract_versions.git_version(path, base)
                missing = f"new at {base}: nothing to compare"
            else:
                old = contract_versions.published_version(contract, catalog)
                missing = "no published contract recorded: nothing to compare"
        except (ContractError, ValueError) as exc:
            rows.append(Row(path, contract.key, note=f"base does not load: {exc}"))
            continue
        if old is None:
            rows.append(Row(path, contract.key, note=missing))
            continue
        verdict = contract_versions.judge(old, current, entries, with_impacts=with_impacts)
        rows.append(Row(path, contract.key, verdict))
    return rows


def _entries(workspace: Path | None):
    from mesh_platform.consumers import all_entries

    return all_entries(workspace)


def diff_command(paths: list[str], base: str | None, catalog_home: Path, as_json: bool,
                 workspace: str | None = None, out: TextIO = sys.stdout) -> int:
    """0: nothing the gate stops; 1: a breaking change without a major bump, or a major bump
    that breaks a consumer; 2: a contract or base that does not load."""
    ws = Path(workspace).resolve() if workspace else None
    if paths:
        files = [Path(p).resolve() for p in paths]
    else:
        files, errors = workspace_contracts(ws)
        for e in errors:
            print(e, file=sys.stderr)
    try:
        if base is not None and files:
            contract_versions.git_text(files[0], base)  # a bad ref fails once, clearly
    except ValueError as exc:
        print(f"mesh contract diff: {exc}", file=sys.stderr)
        return 2
    rows = compare_all(files, base, catalog_home, ws)
    if as_json:
        json.dump([_as_dict(r) for r in rows], out, indent=2)
        out.write("\n")
    else:
        for row in rows:
            out.write(format_row(row))
    if any(r.note and (r.note.startswith("does not load") or r.note.startswith("base does not load")) for r in rows):
        return 2
    return 1 if any(r.failed for r in rows) else 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_row(row: Row) -> str:
    name = row.key or "?"
    if row.verdict is None:
        return f"{name} ({_shown(row.path)}): {row.note}\n"
    v = row.verdict
    d = v.diff
    lines = [f"{name} ({_shown(row.path)}): {d.old_version} -> {d.new_version} against {d.old.origin}"]
    if not d.changes:
        lines.append("  no changes")
    for c in d.changes:
        lines.append(f"  {'BREAKING' if c.breaking else 'ok':<9}{c.field}  {c.rule}: {c.message}")
        for i in v.impacts or []:
            if i.change is c:
                same = "" if i.breaks_reads else " (what it reads still reads the same)"
                lines.append(f"           consumer {i}{same}")
        if c.breaking and v.impacts is not None and not any(i.change is c for i in v.impacts):
            lines.append("           no consumer reads it")
    if v.problems:
        lines += [f"  FAILS: {p}" for p in v.problems]
    elif d.breaking:
        lines.append(f"  breaking, released as a new major version ({d.new_version})")
    else:
        lines.append(f"  compatible (at least {d.suggested_version})" if d.changes else "  unchanged")
    return "\n".join(lines) + "\n"


def _as_dict(row: Row) -> dict:
    out = {"contract": str(row.path), "product": row.key}
    if row.verdict is None:
        return out | {"note": row.note}
    v, d = row.verdict, row.verdict.diff
    return out | {
        "base": d.old.origin,
        "old_version": d.old_version,
        "new_version": d.new_version,
        "breaking": bool(d.breaking),
        "suggested_version": d.suggested_version,
        "changes": [
            c.as_dict() | {"consumers": [i.as_dict() | {"change": None} for i in v.impacts or [] if i.change is c]}
            for c in d.changes
        ],
        "problems": v.problems,
    }


def check_base(base: str, catalog_home: Path | None = None) -> int:
    """`mesh check --base REF`: the gate against git, for every product contract; prints what it
    stops (with the consumers a breaking change breaks). Returns the number of contracts stopped."""
    files, errors = workspace_contracts()
    failed = len(errors)
    for e in errors:
        print(e, file=sys.stderr)
    for row in compare_all(files, base, catalog_home, with_impacts=True):
        if row.note and "does not load" in row.note:
            failed += 1
            print(f"{row.key or row.path}: {row.note}", file=sys.stderr)
        elif row.failed:
            failed += 1
            print(f"{row.path}: version: " + "; ".join(row.verdict.problems), file=sys.stderr)
            for i in row.verdict.impacts or []:
                print(f"  {i.change.message}: consumer {i}", file=sys.stderr)
        elif row.verdict is not None and row.verdict.diff.changes:
            d = row.verdict.diff
            kind = "breaking (new major version)" if d.breaking else "compatible"
            print(f"{row.key}: {d.old_version} -> {d.new_version} against {base}: {len(d.changes)} changes, {kind}")
    return failed

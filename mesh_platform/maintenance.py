"""Table maintenance, as Iceberg does it: expire old snapshots, then remove orphan files.

Writers never delete (see storage), so everything a failed, blocked or interrupted publish left
behind, and the files of expired snapshots, are removed here, and only here:

- Snapshots are expired when they are neither among the `keep_versions` latest published
  versions nor younger than `min_age` (so readers pinned to a recent version keep it).
- A file under a table's folder is an orphan when no remaining snapshot or kept metadata file
  names it. It is removed only once older than `orphan_age`: a publish in progress has written
  files that its commit will name in a moment, so the window must exceed any publish's length.
- In S3, a multipart upload cut off between two parts keeps its parts without being an object:
  it is aborted by the same age rule.
- Folders of tables that were never created (a first publish interrupted) and DuckDB's spill
  and scratch files under the home's tmp folder follow the same age rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from mesh_platform.storage import WAREHOUSE, Catalog, retry, published_snapshots

KEEP_VERSIONS = 5
MIN_AGE = timedelta(days=7)
ORPHAN_AGE = timedelta(days=1)
SCRATCH = "tmp"


@dataclass
class TableReport:
    table: str
    expired_snapshots: list[int] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)  # relative to the home
    removed_bytes: int = 0


@dataclass
class MaintenanceReport:
    tables: list[TableReport] = field(default_factory=list)
    dry_run: bool = False

    @property
    def removed_files(self) -> int:
        return sum(len(t.removed_files) for t in self.tables)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"{t.table}: expired {len(t.expired_snapshots)} snapshots, {verb} {len(t.removed_files)} files "
            f"({t.removed_bytes:,} bytes)"
            for t in self.tables
        ]
        total = sum(t.removed_bytes for t in self.tables)
        return "\n".join([*lines, f"{verb} {self.removed_files} files, {total:,} bytes in all"])


def maintain(
    catalog: Catalog,
    keep_versions: int = KEEP_VERSIONS,
    min_age: timedelta = MIN_AGE,
    orphan_age: timedelta = ORPHAN_AGE,
    dry_run: bool = False,
    tables: list[tuple[str, str]] | None = None,
) -> MaintenanceReport:
    """Maintain `tables` ((namespace, name); default: every table of the catalog)."""
    if keep_versions < 1:
        raise ValueError(f"keep_versions must be at least 1 (the current version), got {keep_versions}")
    now = time.time()
    cutoff = now - orphan_age.total_seconds()
    report = MaintenanceReport(dry_run=dry_run)
    fs, to_path = catalog.filesystem()
    known = set()
    for namespace, name in catalog.tables() if tables is None else tables:
        known.add((namespace, name))
        table_report = TableReport(f"{namespace}/{name}")
        table_report.expired_snapshots = _expire(catalog, namespace, name, keep_versions, min_age, now, dry_run)
        table = catalog.load_table(namespace, name)
        referenced = {to_path(n) for n in _referenced(table)}
        root = to_path(table.location())
        _remove_orphans(fs, root, referenced, cutoff, table_report, dry_run)
        for path, size in catalog.unfinished_uploads(table.location(), cutoff, abort=not dry_run):
            table_report.removed_files.append(path.removeprefix(root.rstrip("/") + "/") + " (unfinished upload)")
            table_report.removed_bytes += size
        report.tables.append(table_report)
    if catalog.remote:
        return report
    local = catalog.home
    # Folders of tables the catalog does not know: a first publish that never committed.
    for folder in sorted(p for p in (local / WAREHOUSE).glob("*/*") if p.is_dir()):
        if (folder.parent.name, folder.name) not in known:
            leftover = TableReport(f"{folder.parent.name}/{folder.name} (never published)")
            _remove_orphans(fs, str(folder), set(), cutoff, leftover, dry_run)
            if leftover.removed_files:
                report.tables.append(leftover)
    scratch = TableReport(f"{SCRATCH}/ (spill and scratch files)")
    _remove_orphans(fs, str(local / SCRATCH), set(), cutoff, scratch, dry_run)
    if scratch.removed_files:
        report.tables.append(scratch)
    return report


def maintain_all(home: Path, env: str, contracts: list, catalog_url: str | None = None, **options) -> MaintenanceReport:
    """Every product's table in `env`: the local catalog whole (and its scratch), and the tables
    of products that live in a cloud."""
    from mesh_platform.places import local_catalog, table

    report = maintain(local_catalog(str(home), catalog_url), **options)
    remote: dict = {}
    for contract in contracts:
        if contract.server(env).type == "bigquery":
            continue  # a BigQuery view (prod customer_360) holds no files
        t = table(contract, env, home, catalog_url)
        if t.catalog.remote:
            remote.setdefault(t.catalog, []).append((t.namespace, t.name))
    for catalog, tables in remote.items():
        report.tables += maintain(catalog, tables=tables, **options).tables
    return report


def _expire(catalog: Catalog, namespace: str, name: str, keep: int, min_age: timedelta, now: float,
            dry_run: bool) -> list[int]:
    young = (now - min_age.total_seconds()) * 1000

    def expire() -> list[int]:
        table = catalog.load_table(namespace, name)
        current = table.current_snapshot()
        kept = {s.snapshot_id for s in published_snapshots(table)[-keep:]}
        if current is not None:
            kept.add(current.snapshot_id)
        doomed = [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in kept and s.timestamp_ms < young]
        if doomed and not dry_run:
            table.maintenance.expire_snapshots().by_ids(doomed).commit()
        return doomed

    return retry(expire)


def _referenced(table) -> set[str]:
    """Every file the table's kept metadata names: metadata files in its log, and each remaining
    snapshot's manifest list, manifests and live data files."""
    io = table.io
    names = {table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)}
    for snapshot in table.snapshots():
        names.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            names.add(manifest.manifest_path)
            names.update(entry.data_file.file_path for entry in manifest.fetch_manifest_entry(io))
    return names


def _remove_orphans(fs, root: str, referenced: set[str], older_than: float, report: TableReport,
                    dry_run: bool) -> None:
    from pyarrow import fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    for info in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
        if info.path in referenced or (info.mtime is not None and info.mtime.timestamp() > older_than):
            continue
        if not dry_run:
            fs.delete_file(info.path)
        report.removed_files.append(info.path.removeprefix(root.rstrip("/") + "/"))
        report.removed_bytes += info.size
    if not dry_run and isinstance(fs, pafs.LocalFileSystem):
        for sub in sorted((p for p in Path(root).rglob("*") if p.is_dir()), reverse=True):
            if not any(sub.iterdir()):
                sub.rmdir()


def audit(log, report: MaintenanceReport, actor: str, run_id: str | None = None) -> None:
    """One audit entry per table maintenance removed something from."""
    if report.dry_run:
        return
    for table in report.tables:
        if table.removed_files or table.expired_snapshots:
            log.append("maintenance_delete", actor, table.table.split(" ")[0], run_id=run_id,
                       expired_snapshots=[str(s) for s in table.expired_snapshots],
                       removed_files=table.removed_files, removed_bytes=table.removed_bytes)

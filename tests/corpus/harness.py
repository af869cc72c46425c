"""What the corpus runs on: the good landing set every case starts from, a temporary workspace
in which a case's edited copies of domain folders replace the real ones, real runs on a test
instance, what a published product holds, and everything a run recorded."""

from __future__ import annotations

import functools
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
from landing import CRM_CSV, EVENTS, ORDERS, write_landing

import mesh_platform.workspace as workspace
from mesh_platform.storage import Catalog

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "customer": ROOT / "domains" / "customer",
    "orders": ROOT / "domains" / "orders",
    "preferences": ROOT / "domains" / "preferences",
    "federation": ROOT / "mesh_platform" / "federation",
}
PRODUCT = {"customer": "profiles", "orders": "history", "preferences": "settings", "federation": "customer_360"}

# Distinctive values a landing row carries, so that a leak of it into any message is found.
GOOD_ID = "ZQX9-GOOD-1001"  # a customer of the good landing set
BAD_ID = "ZQX9-BAD-2002"  # the customer of a case's bad row
GOOD_ORDER, BAD_ORDER = "ZQX9-ORD-3003", "ZQX9-ORD-4004"
PII = ("Zyxwvut", "Qwertzuiop", "secret@example.test")  # first name, last name, email
# The hand-written rows' emails (classified PII too; their names are too short to search for).
EMAILS = ("Anna.Smith@Example.COM", "anna.smith@example.com", "ANNA.LEE@example.com", "anna.lee@example.com",
          "ben.jones@example.com", "cleo.park@example.com")
IDS = (GOOD_ID, BAD_ID, GOOD_ORDER, BAD_ORDER)
MARKERS = (*IDS, *PII, *EMAILS)

CRM_HEADER = "customer_id,first_name,last_name,email,country,segment,signup_date,updated_at"
GOOD_CRM = CRM_CSV + f"{GOOD_ID},Zyxwvut,Qwertzuiop,secret@example.test,NL,smb,2024-04-01,2024-04-01 08:00:00\n"
GOOD_ORDERS = [*ORDERS, (GOOD_ORDER, GOOD_ID, "2024-04-02 10:00:00", "completed", [(2, "4.50")])]
GOOD_EVENTS = [*EVENTS, ("ZQX9-EVT-5005", GOOD_ID, "2024-04-03 08:00:00", "language", "Zyxwvut")]


def write_good_landing(root: Path) -> None:
    """The landing set every case starts from (and is restored to): the hand-written one plus a
    customer, an order and an event made of marker values."""
    if root.exists():
        shutil.rmtree(root)
    write_landing(root, crm_csv=GOOD_CRM, orders=GOOD_ORDERS, events=GOOD_EVENTS)


class Workspace:
    """workspace.yaml's four locations, with edited copies in place of the real folders of the
    domains a case changes. While installed, the platform reads this workspace (the registry's
    cross-location checks and the override names see the copies)."""

    def __init__(self, base: Path, edits: dict[str, dict[str, object]]):
        base.mkdir(parents=True, exist_ok=True)
        self.folders = dict(FOLDERS)
        for domain, files in edits.items():
            folder = base / domain  # the folder name is the location's name
            shutil.copytree(FOLDERS[domain], folder, ignore=shutil.ignore_patterns("__pycache__"))
            for rel, edit in files.items():
                path = folder / rel
                if callable(edit):
                    new = edit(path.read_text(encoding="utf-8"))
                else:
                    new = edit  # a whole new file
                if isinstance(new, bytes):
                    path.write_bytes(new)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(new, encoding="utf-8")
            self.folders[domain] = folder
        self.yaml = base / "workspace.yaml"
        self.yaml.write_text("load_from:\n" + "".join(
            f"  - python_file:\n      relative_path: {folder / 'definitions.py'}\n"
            f"      location_name: {name}\n      working_directory: {ROOT}\n"
            for name, folder in self.folders.items()
        ))

    @classmethod
    def real(cls) -> Workspace:
        """The workspace as it is (workspace.yaml, no copies)."""
        ws = cls.__new__(cls)
        ws.folders, ws.yaml = dict(FOLDERS), None
        return ws

    def install(self, monkeypatch) -> Workspace:
        mine = _ORIGINAL_LOCATIONS(self.yaml)  # read once: a load asks for it three times

        def locations(path: Path | None = None):
            return mine if path is None else _ORIGINAL_LOCATIONS(path)

        monkeypatch.setattr(workspace, "locations", locations)
        return self

    def definitions(self, name: str) -> dg.Definitions:
        if self.yaml is None:
            return _ORIGINAL_LOCATIONS()[name].definitions()
        return workspace.locations()[name].definitions()


_ORIGINAL_LOCATIONS = workspace.locations


def run(defs: dg.Definitions, location: str, instance: dg.DagsterInstance, tags: dict[str, str]):
    """A real run of the location's products job (the one its schedule and `mesh` run)."""
    return defs.resolve_job_def(f"{location}_products").execute_in_process(
        instance=instance, raise_on_error=False, tags=tags or None,
        # The console shows only errors (every event is still in the instance's event log):
        # formatting each event for it is a good part of a short run's time.
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )


@dataclass(frozen=True)
class Published:
    snapshot_id: int | None
    history: tuple[int, ...]
    rows: list[dict]
    data_files: tuple[str, ...]  # every Parquet file in the table's data folder


@functools.cache
def _catalog(home: Path) -> Catalog:
    return Catalog(home)  # its SQL catalog reads the catalog database afresh at every call


def published(home: Path, domain: str) -> Published:
    name = PRODUCT[domain]
    catalog = _catalog(home)
    snapshot = catalog.current(domain, name)
    if snapshot is None or snapshot.snapshot_id is None:
        return Published(None, (), [], ())
    rows = duckdb.read_parquet(list(snapshot.files)).to_arrow_table().to_pylist() if snapshot.files else []
    folder = home / "warehouse" / domain / name / "data"
    return Published(
        snapshot.snapshot_id,
        tuple(catalog.history(domain, name)),
        sorted(rows, key=lambda r: r["customer_id"]),
        tuple(sorted(str(p) for p in folder.glob("*.parquet"))),
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """What a failed run says: its step failures and its checks' descriptions."""
    texts = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    texts += [e.description or "" for e in result.get_asset_check_evaluations()]
    return "\n".join(texts)


def error_chain(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's error info: messages and stack text, with causes and contexts."""
    texts = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        stack = [event.step_failure_data.error]
        while stack:
            info = stack.pop()
            if info is None:
                continue
            texts += [info.message, *info.stack]
            stack += [info.cause, info.context]
    return "\n".join(texts)


def recorded(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, home: Path, audit_from: int) -> str:
    """Everything the run left behind for anyone to read: every event log entry (messages,
    metadata, check results, errors with their stacks), the run record, and the audit log
    lines it appended."""
    texts = [error_chain(result), dg.serialize_value(instance.get_run_by_id(result.run_id))]
    for entry in instance.all_logs(result.run_id):
        texts += [entry.message or "", entry.user_message or "", dg.serialize_value(entry)]
    texts.append(audit_text(home)[audit_from:])
    return "\n".join(texts)


def exception_text(exc: BaseException) -> str:
    """An exception as a load failure shows it: message, traceback and every cause/context."""
    return "".join(traceback.format_exception(exc))


def audit_text(home: Path) -> str:
    log = home / "audit" / "log.jsonl"
    return log.read_text() if log.exists() else ""

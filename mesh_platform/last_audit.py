"""Each product's latest audit: its checks' outcomes and whether the version was published,
kept by publish under `<home>/audit/latest/` (one small JSON file a product, replaced whole), so
that `mesh status` answers in a fraction of a second without loading Dagster. Dagster's event log
stays the record the UI shows; the audit trail (audit.py) the tamper-evident one."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mesh_platform.quality import Outcome


def _path(home: Path | str, key: str) -> Path:
    return Path(home) / "audit" / "latest" / (key.replace("/", ".") + ".json")


def record(home: Path | str, key: str, outcomes: list[Outcome], published: bool) -> None:
    path = _path(home, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"at": time.time(), "published": published, "checks": len(outcomes),
            "failed": [o.name for o in outcomes if not o.passed],
            "blocking_failed": [o.name for o in outcomes if o.blocking and not o.passed]}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body))
    tmp.replace(path)


def summary(home: Path | str, key: str) -> str:
    """`5/5 passed`; `4/5 passed, failed: x`; `..., not published` for a blocked version."""
    try:
        body = json.loads(_path(home, key).read_text())
    except (OSError, ValueError):
        return "not evaluated"
    text = f"{body['checks'] - len(body['failed'])}/{body['checks']} passed"
    if body["failed"]:
        text += f", failed: {', '.join(body['failed'])}"
    return text + ("" if body["published"] else " (blocked: not published)")

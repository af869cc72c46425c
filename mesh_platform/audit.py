"""TEMPORARY stand-in until the hash-chained audit log lands (same interface)."""
from __future__ import annotations
import json
from pathlib import Path


class AuditLog:
    def __init__(self, home):
        self.path = Path(home) / "audit" / "log.jsonl"

    def append(self, action, actor, product=None, **detail):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"action": action, "actor": actor, "product": product, "detail": detail}) + "\n")

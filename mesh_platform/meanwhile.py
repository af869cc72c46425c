"""Modules imported in a thread while the step's DuckDB query runs.

A step needs pyiceberg to read its inputs and to commit, not to read its own previous version (see
storage.Catalog.head); its catalog and pyarrow layer (pyarrow.dataset, pandas) take 0.5-0.8 s
to import here. A process that runs products one after another (`mesh materialize` at 1M
customers, a run the UI launches) paid that on its first step's critical path. DuckDB holds no
GIL while it computes, so the import overlaps the query. The thread is joined before the step
goes on: no thread outlives the compute, and a later fork of this process copies no half-done
import.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterator

# What a product's first commit loads.
COMMIT_MODULES = ("pyiceberg.catalog.sql", "pyiceberg.io.pyarrow")


@contextlib.contextmanager
def importing(modules: tuple[str, ...] = COMMIT_MODULES) -> Iterator[None]:
    missing = [m for m in modules if m not in sys.modules]
    if not missing:
        yield
        return
    thread = threading.Thread(target=_import_all, args=(missing,), name="mesh-import", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _import_all(modules: list[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the step's own import of it raises it again, where it is needed
            continue

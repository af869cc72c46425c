"""Garbage collection in the `mesh` command's own process, which ends once its command is done.

What it loads to run products (Dagster, the locations' definitions, the instance, pyiceberg,
pyarrow: hundreds of thousands of objects) stays alive until the process exits, yet each of
Python's full collections walks all of it, several times a refresh, and its last collection at
exit walks it once more. Measured on a refresh at 100k customers: collections 0.9 s -> 0.47 s,
and the exit 0.8-0.9 s -> 0.09 s.

`settle()` moves everything alive now out of the collector's sight (`gc.freeze`), and `enable()`
makes collections rarer (THRESHOLD). Cyclic garbage made before a settle is then never collected,
and newer garbage later: an ended process can afford that, a long-lived one (a code server, a
test session calling `main`) cannot, so this is off unless `enable()`d, which only the console
script does. Nothing of ours relies on a finalizer at exit: connections, catalogs and files are
closed where they are used.
"""

from __future__ import annotations

import atexit
import gc

_enabled = False
# The young generation collected every 10,000 new objects instead of 700, the older ones 2x and
# 10x less often: a refresh at 100k or 1M spent 0.5 s in 880 collections, most of it walking what
# a step's imports had just loaded (0.25 s in 78 with these).
THRESHOLD = (10_000, 20, 100)


def enable() -> None:
    global _enabled
    if not _enabled:
        _enabled = True
        gc.set_threshold(*THRESHOLD)
        atexit.register(gc.freeze)  # atexit runs before the interpreter's last collection


def settle() -> None:
    """Before a run: what is loaded now lives until exit."""
    if _enabled:
        gc.freeze()

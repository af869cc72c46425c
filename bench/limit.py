"""Run the limit script (limit.sql) on one DuckDB connection and time each of its steps.

python -m bench.limit --landing L --out O  writes O/<product>.parquet and O/steps.json.
Python only reads the clocks between steps (and samples the process's RSS while one runs);
every statement is the script's own SQL. With --memory-limit, DuckDB is held to that much
memory and spills to O/spill, as its tuning guide says to bound it.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import threading
import time
from pathlib import Path
from string import Template

import duckdb
import psutil

SCRIPT = Path(__file__).with_name("limit.sql")


def steps(landing: Path, out: Path) -> list[tuple[str, str]]:
    sql = Template(SCRIPT.read_text()).safe_substitute(landing=landing, out=out)
    parts = re.split(r"(?m)^-- step: (\w+)$", sql)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limit", description=__doc__)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--memory-limit", help="DuckDB's memory_limit, such as 1800MB; unbounded by default")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    timings = {}
    con = duckdb.connect()
    if args.memory_limit:
        con.execute("SET memory_limit = $1", [args.memory_limit])
        con.execute("SET temp_directory = $1", [str(args.out.resolve() / "spill")])
        con.execute("SET preserve_insertion_order = false")
    for name, sql in steps(args.landing.resolve(), args.out.resolve()):
        with _PeakRss() as peak:
            cpu, start = _cpu_s(), time.perf_counter()
            try:
                con.execute(sql)
            except duckdb.Error as exc:
                print(f"limit: step {name} failed: {exc}", file=sys.stderr)
                return 1
            seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
        timings[name] = {"s": seconds, "cpu_s": cpu, "peak_rss_mb": peak.mb}
    (args.out / "steps.json").write_text(json.dumps(timings, indent=1))
    print("limit: " + ", ".join(f"{k} {v['s']:.2f}s" for k, v in timings.items()))
    return 0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _PeakRss:
    """The largest RSS of this process while the block runs, sampled every 20 ms."""

    def __enter__(self):
        self.mb, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        me = psutil.Process()
        while True:
            self.mb = max(self.mb, me.memory_info().rss / 2**20)
            if self._stop.wait(0.02):
                return

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


if __name__ == "__main__":
    sys.exit(main())

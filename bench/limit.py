"""Run the limit script (limit.sql) on one DuckDB connection and time each of its steps.

python -m bench.limit --landing L --out O  writes O/<product>.parquet and O/steps.json.
Python only reads the clock between steps; every statement is the script's own SQL.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from string import Template

import duckdb

SCRIPT = Path(__file__).with_name("limit.sql")


def steps(landing: Path, out: Path) -> list[tuple[str, str]]:
    sql = Template(SCRIPT.read_text()).safe_substitute(landing=landing, out=out)
    parts = re.split(r"(?m)^-- step: (\w+)$", sql)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limit", description=__doc__)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    timings = {}
    con = duckdb.connect()
    for name, sql in steps(args.landing.resolve(), args.out.resolve()):
        start = time.perf_counter()
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            print(f"limit: step {name} failed: {exc}", file=sys.stderr)
            return 1
        timings[name] = time.perf_counter() - start
    (args.out / "steps.json").write_text(json.dumps(timings, indent=1))
    print("limit: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

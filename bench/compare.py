"""Order-independent comparison of one product as computed by two systems.

Each side is cast to the contract's column types (the usual way's pandas frames come back as
doubles and nanosecond timestamps), then compared as multisets of rows with EXCEPT ALL."""

from __future__ import annotations

import duckdb

from mesh_platform.contracts import Contract

SAMPLE = 3


class Mismatch(AssertionError):
    pass


def compare(con: duckdb.DuckDBPyConnection, contract: Contract, outputs: dict[str, str]) -> int:
    """`outputs` maps a system's name to a SQL table expression holding its rows.
    Returns the row count all systems agree on; raises Mismatch naming the systems and rows."""
    select = ", ".join(f'CAST("{c.name}" AS {c.physical_type}) AS "{c.name}"' for c in contract.columns)
    names = list(outputs)
    for name in names:
        con.execute(f"CREATE OR REPLACE TEMP TABLE cmp_{name} AS SELECT {select} FROM {outputs[name]}")
    reference, counts = names[0], {}
    for name in names:
        counts[name] = con.execute(f"SELECT count(*) FROM cmp_{name}").fetchall()[0][0]
    for other in names[1:]:
        problems = []
        for a, b in ((reference, other), (other, reference)):
            rows = con.execute(
                f"SELECT * FROM (SELECT * FROM cmp_{a} EXCEPT ALL SELECT * FROM cmp_{b}) LIMIT {SAMPLE}"
            ).fetchall()
            if rows:
                problems.append(f"rows of {a} missing from {b}, e.g. {rows}")
        if problems or counts[reference] != counts[other]:
            raise Mismatch(
                f"{contract.domain}/{contract.name}: {reference} ({counts[reference]} rows) and "
                f"{other} ({counts[other]} rows) differ:\n" + "\n".join(problems)
            )
    return counts[reference]

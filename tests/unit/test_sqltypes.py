"""The load-time type grammar (mesh_platform/sqltypes.py) against DuckDB itself: whatever it
accepts, DuckDB must accept; whatever it does not know is left to DuckDB."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import duckdb
import pytest
import yaml

from mesh_platform import sqltypes

ROOT = Path(__file__).resolve().parents[2]


def duckdb_accepts(text: str) -> bool:
    try:
        duckdb.sqltype(text)
    except duckdb.Error:
        return False
    return True


@functools.cache
def keywords() -> list[str]:
    return [k for (k,) in duckdb.sql("SELECT keyword_name FROM duckdb_keywords() ORDER BY 1").fetchall()]


def test_reserved_field_names_are_exactly_those_duckdb_refuses():
    refused = {k for k in keywords() if not duckdb_accepts(f"STRUCT({k} INTEGER)")}
    assert refused == sqltypes._RESERVED


def random_type(rng: random.Random, depth: int = 0) -> str:
    names = [*sqltypes._SCALARS, *sqltypes._STRINGS, *sqltypes._DECIMALS, "FLOATY", "INT(3)", "VARCHAR(a)"]
    roll = rng.random()
    if depth < 3 and roll < 0.2:
        fields = []
        for _ in range(rng.randint(0, 3)):
            name = rng.choice([rng.choice(keywords()), "a", "A", "b_1", "_x", '"with"', '"a b"', '""'])
            fields.append(f"{name} {random_type(rng, depth + 1)}")
        t = f"STRUCT({', '.join(fields)})"
    elif depth < 3 and roll < 0.3:
        t = f"MAP({random_type(rng, depth + 1)}, {random_type(rng, depth + 1)})"
    else:
        t = rng.choice(names)
        if rng.random() < 0.3:
            args = [str(rng.choice([0, 1, 2, 18, 38, 39, 10**12])) for _ in range(rng.randint(1, 3))]
            t += f"({','.join(args)})"
    t = rng.choice([t, t.lower(), t.title()])
    for _ in range(rng.choice([0, 0, 1, 2])):
        t += rng.choice(["[]", "[3]", "[0]", "[ ]", "[100000000000]"])
    return rng.choice([t, f" {t} ", t.replace(",", " , ")])


def test_whatever_the_grammar_accepts_duckdb_accepts():
    rng = random.Random(7)
    recognized = 0
    for _ in range(3000):
        text = random_type(rng)
        if sqltypes.recognized(text):
            recognized += 1
            assert duckdb_accepts(text), text
    assert recognized > 600  # the sample does exercise the grammar, not only its refusals


def contract_types() -> set[str]:
    found = set()
    for path in [*ROOT.glob("domains/*/contracts/*.yaml"), *ROOT.glob("mesh_platform/federation/contracts/*.yaml")]:
        for obj in yaml.safe_load(path.read_text())["schema"]:
            found |= {p["physicalType"] for p in obj["properties"]}
    return found


def test_every_type_the_mesh_contracts_use_is_checked_without_duckdb():
    types = contract_types()
    assert any("STRUCT(" in t for t in types)
    assert [t for t in types if not sqltypes.recognized(t)] == []


@pytest.mark.parametrize("text", ["TIMESTAMP WITH TIME ZONE", "UNION(a INTEGER, b VARCHAR)", "ENUM('x', 'y')"])
def test_types_outside_the_grammar_are_left_to_duckdb(text):
    assert not sqltypes.recognized(text)
    sqltypes.check(text)  # DuckDB accepts it: no error


@pytest.mark.parametrize("text", ["FLOATY", "INT(3)", "STRUCT(select INTEGER)", "DECIMAL(39,2)", "", "VARCHAR[0]"])
def test_unknown_types_are_refused(text):
    with pytest.raises(sqltypes.UnknownType):
        sqltypes.check(text)


def test_spelling_is_duckdbs():
    assert sqltypes.duckdb_spelling("struct(a int, b numeric(9,2))[]") == "STRUCT(a INTEGER, b DECIMAL(9,2))[]"

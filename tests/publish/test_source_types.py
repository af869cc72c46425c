"""Every value of a CSV or JSON lines source is converted to its contract's type only when that is
lossless; otherwise the read fails naming the file and the column, never the value. Read here
with `sources.read` on a real DuckDB, as a product's step reads them."""

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from mesh_platform import sources
from mesh_platform.contracts import load_contract

COLUMNS = {"n": "BIGINT", "d": "DECIMAL(10,2)", "f": "DOUBLE", "day": "DATE", "ts": "TIMESTAMP", "ok": "BOOLEAN",
           "s": "VARCHAR"}
REQUIRED = {"n"}


def _landing(tmp_path: Path, fmt: str, body: str) -> sources.Landing:
    props = "\n".join(
        f"      - {{name: {name}, logicalType: string, physicalType: \"{kind}\", required: {str(name in REQUIRED).lower()}}}"
        for name, kind in COLUMNS.items()
    )
    tmp_path.mkdir(exist_ok=True)
    contract = tmp_path / "typed.odcs.yaml"
    contract.write_text(f"""\
apiVersion: v3.1.0
kind: DataContract
id: urn:mesh:test:source:typed
name: typed
version: 1.0.0
status: active
domain: test
team:
  name: test-team
servers:
  - server: landing
    type: local
    format: {fmt}
    path: typed/*.{fmt}
schema:
  - name: typed
    physicalType: file
    properties:
{props}
""")
    (tmp_path / "typed").mkdir(exist_ok=True)
    (tmp_path / "typed" / f"part-1.{fmt}").write_text(body)
    return sources.resolve(load_contract(contract), tmp_path, None)


def _read(landing: sources.Landing) -> list[tuple]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # as the platform's engine sets it
    return sources.read(con, landing).fetchall()


def _error(landing: sources.Landing) -> str:
    with pytest.raises(duckdb.Error) as raised:
        _read(landing)
    return sources.explain(raised.value, [landing])


def _jsonl(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


GOOD_JSON = {"n": 7, "d": 2.5, "f": 1, "day": "2024-02-29", "ts": "2024-03-01T12:00:00+02:00", "ok": True, "s": "x"}
GOOD_ROW = (7, Decimal("2.50"), 1.0, dt.date(2024, 2, 29), dt.datetime(2024, 3, 1, 10, 0), True, "x")


def test_json_values_convert_to_the_contracts_types(tmp_path):
    sparse = {"n": -3, "d": 3, "f": None, "s": None}  # nulls and absent keys: nulls in optional columns
    landing = _landing(tmp_path, "json", _jsonl(GOOD_JSON, sparse))
    assert sorted(_read(landing)) == [(-3, Decimal("3.00"), None, None, None, None, None), GOOD_ROW]


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("n", "12", "is stored as JSON VARCHAR, which does not convert to the contract's BIGINT without loss"),
    ("n", 1.5, "is stored as JSON DOUBLE, which does not convert to the contract's BIGINT without loss"),
    ("n", 2**64 - 1, "holds a value that is not a BIGINT"),
    ("n", None, "is required but a row has no value"),
    ("d", 1.234, "holds a value that is not a DECIMAL(10,2)"),
    ("d", "1.2", "is stored as JSON VARCHAR, which does not convert to the contract's DECIMAL(10,2)"),
    ("f", "1.5", "is stored as JSON VARCHAR, which does not convert to the contract's DOUBLE"),
    ("day", "2024-02-30", "holds a value that is not a DATE"),
    ("day", 20240229, "is stored as JSON UBIGINT, which does not convert to the contract's DATE"),
    ("ts", "2024-03-01T12:00:00.1234567Z", "holds a value that is not a TIMESTAMP"),
    ("ts", "infinity", "holds a value that is not a TIMESTAMP"),
    ("ts", 1709287200, "is stored as JSON UBIGINT, which does not convert to the contract's TIMESTAMP"),
    ("ok", "true", "is stored as JSON VARCHAR, which does not convert to the contract's BOOLEAN"),
    ("s", -5, "is stored as JSON BIGINT, which does not convert to the contract's VARCHAR"),
    ("s", {"a": "b"}, "is stored as JSON OBJECT, which does not convert to the contract's VARCHAR"),
    ("s", True, "is stored as JSON BOOLEAN, which does not convert to the contract's VARCHAR"),
    ("ts", ["2024-03-01 12:00:00"], "is stored as JSON ARRAY, which does not convert to the contract's TIMESTAMP"),
    ("s", "a\u0000b", "holds a NUL byte"),
])
def test_a_json_value_that_does_not_convert_names_the_file_and_column_never_the_value(tmp_path, column, value,
                                                                                        problem):
    landing = _landing(tmp_path, "json", _jsonl(GOOD_JSON, {**GOOD_JSON, column: value}))
    message = _error(landing)
    assert "source 'typed'" in message and landing.files[0] in message
    assert f"column '{column}' {problem}" in message
    assert json.dumps(value) not in message.split(landing.files[0])[-1]  # the paths may hold digits


CSV_HEADER = ",".join(COLUMNS) + "\n"
GOOD_CSV = "7,2.5,1,2024-02-29,2024-03-01 12:00:00+02:00,true,x\n"


def test_csv_texts_convert_to_the_contracts_types(tmp_path):
    landing = _landing(tmp_path, "csv", CSV_HEADER + GOOD_CSV + "-3, 3 ,,,,,\n")
    assert sorted(_read(landing)) == [(-3, Decimal("3.00"), None, None, None, None, None), GOOD_ROW]


@pytest.mark.parametrize(("column", "text", "problem"), [
    ("n", "1.5", "holds a value that is not a BIGINT"),
    ("n", "0x10", "holds a value that is not a BIGINT"),
    ("n", "", "is required but a row has no value"),
    ("d", "1.234", "holds a value that is not a DECIMAL(10,2)"),
    ("d", "1e2", "holds a value that is not a DECIMAL(10,2)"),
    ("day", "2024-02-30", "holds a value that is not a DATE"),
    ("ts", "2024-03-01 12:00:00.1234567", "holds a value that is not a TIMESTAMP"),
    ("ts", "epoch", "holds a value that is not a TIMESTAMP"),
])
def test_a_csv_text_that_does_not_convert_names_the_file_and_column_never_the_value(tmp_path, column, text,
                                                                                      problem):
    fields = GOOD_CSV.rstrip("\n").split(",")
    fields[list(COLUMNS).index(column)] = text
    landing = _landing(tmp_path, "csv", CSV_HEADER + GOOD_CSV + ",".join(fields) + "\n")
    message = _error(landing)
    assert landing.files[0] in message and f"column '{column}' {problem}" in message
    if text:
        assert text not in message.split(landing.files[0])[-1]


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-01 12:00:00", dt.datetime(2024, 3, 1, 12)),  # the usual shape, parsed by its format
    ("2024-3-1 12:00:00", dt.datetime(2024, 3, 1, 12)),  # the other shapes the contract allows
    (" 2024-03-01 12:00:00", dt.datetime(2024, 3, 1, 12)),
    ("2024-03-01T12:00:00.5", dt.datetime(2024, 3, 1, 12, 0, 0, 500000)),
    ("2024-03-01 12:00:00-01", dt.datetime(2024, 3, 1, 13)),
    ("2024-03-01", dt.datetime(2024, 3, 1)),
])
def test_a_timestamp_in_any_allowed_shape_converts_to_the_same_instant(tmp_path, text, expected):
    fields = GOOD_CSV.rstrip("\n").split(",")
    fields[list(COLUMNS).index("ts")] = text
    landing = _landing(tmp_path, "csv", CSV_HEADER + ",".join(fields) + "\n")
    assert _read(landing)[0][list(COLUMNS).index("ts")] == expected
    json_landing = _landing(tmp_path / "json", "json", _jsonl({**GOOD_JSON, "ts": text}))
    assert _read(json_landing)[0][list(COLUMNS).index("ts")] == expected


# Nineteen characters each, as the usual shape, which DuckDB's strptime parses laxly: spaces
# anywhere, one-digit fields. None of them is a timestamp the contract allows.
@pytest.mark.parametrize("text", [
    "2024-03-01  2:00:00", "2024-03-01 12:00: 0", "2024-03-01 12:0:00 ", "-024-03-01 12:00:00",
    "2024-02-30 12:00:00", "2024-03-01 12:00:60", "2024-13-01 12:00:00",
])
def test_a_text_near_the_usual_timestamp_shape_is_refused(tmp_path, text):
    fields = GOOD_CSV.rstrip("\n").split(",")
    fields[list(COLUMNS).index("ts")] = text
    landing = _landing(tmp_path, "csv", CSV_HEADER + GOOD_CSV + ",".join(fields) + "\n")
    json_landing = _landing(tmp_path / "json", "json", _jsonl(GOOD_JSON, {**GOOD_JSON, "ts": text}))
    for refused in (landing, json_landing):
        message = _error(refused)
        assert "column 'ts' holds a value that is not a TIMESTAMP" in message
        assert text.strip() not in message.split(refused.files[0])[-1]  # never the value

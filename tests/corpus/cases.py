"""The bad-input corpus (issue 8: never lose, corrupt or silently accept data).

One row per case: what is bad (landing data, a contract, product code), and what the platform must
say about it. test_corpus.py runs every row the same way:

- the bad input is made: landing files written over the good landing set (harness.py), and/or
  files of a domain folder edited in a temporary copy that replaces the real one in a temporary
  workspace (so cross-location checks see it);
- the location loads and, unless the case is a load error, runs for real (a Dagster run on the
  module's instance) over a home where the good version of every product was published first;
- `expect`: substrings the error must hold (it names the file and the column, field or rule);
  `{folder}` is the case's domain folder (the copy), `{landing}` the landing root;
- `load_error`: the location does not load (ContractError or PolicyError, `field` as named), and
  every other location of the workspace still loads;
- `failed`: the run fails, nothing is published: the product's snapshot id, history, rows and
  data files are what they were before the run;
- `published`: a positive control: the run succeeds and `verify` checks what was published;
- `markers`: values of landing rows that must appear nowhere in what the run recorded (event log
  entries with their metadata, errors with causes, contexts and stacks, the run, the audit log).

To add a case, add a row; the helpers below write landing files and edit contracts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as default
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from corpus.harness import (
    BAD_ID,
    BAD_ORDER,
    CRM_HEADER,
    EMAILS,
    GOOD_CRM,
    MARKERS,
    PII,
)

from mesh_platform.contracts import ALLOW_DROP_TAG, ContractError
from mesh_platform.policies import PolicyError

KINDS = ("csv", "parquet", "jsonl", "contract", "product")
# What a failed rule's sample may show (by design: the key and the offending non-PII column) is
# left out of the markers of cases whose rules fail on purpose; PII never shows.
ALL_PII = (*PII, *EMAILS)


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # one of KINDS
    domain: str  # the location that loads (and runs)
    outcome: str  # "load_error", "failed" or "published"
    expect: tuple[str, ...] = ()  # substrings of the error
    landing: Callable[[Path], None] | None = None  # writes bad files under the landing root
    edits: dict[str, dict[str, object]] = default(default_factory=dict)  # domain -> file -> edit or text
    env: dict[str, str] = default(default_factory=dict)
    tags: dict[str, str] = default(default_factory=dict)
    markers: tuple[str, ...] = MARKERS  # must appear in nothing the run recorded
    error: type = ContractError  # load_error: the exception's type
    field: str | None = None  # load_error: ContractError.field / the policy violation's field
    broken: tuple[str, ...] = ()  # other locations the edits break too (a cycle has two ends)
    checks: dict[str, bool] = default(default_factory=dict)  # asset check -> passed
    verify: Callable | None = None  # verify(before: Published, after: Published, result)
    within: float | None = None  # load_error: seconds the load may take at most


# --- landing helpers ---------------------------------------------------------------------------

def crm_row(**values: str) -> str:
    """A CRM export line for the bad customer, made of marker values; `values` override columns."""
    row = {
        "customer_id": BAD_ID, "first_name": PII[0], "last_name": PII[1], "email": PII[2],
        "country": "NL", "segment": "smb", "signup_date": "2024-04-02", "updated_at": "2024-04-02 09:00:00",
    }
    row.update(values)
    return ",".join(row.values())


def crm(content: str | bytes) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        path = root / "customer" / "crm_export.csv"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return write


def crm_with(*rows: str) -> Callable[[Path], None]:
    """The good export with `rows` appended."""
    return crm(GOOD_CRM + "".join(r + "\n" for r in rows))


FILLER = "".join(
    f"F{i:05d},Fiona,Filler,filler{i}@example.com,DE,consumer,2024-01-01,2024-01-01 00:00:00\n" for i in range(3000)
)


def crm_symlink_outside(root: Path) -> None:
    outside = root.parent / "outside" / "crm.csv"
    outside.parent.mkdir(exist_ok=True)
    outside.write_text(CRM_HEADER + "\n" + crm_row() + "\n")
    target = root / "customer" / "crm_export.csv"
    target.unlink()
    target.symlink_to(outside)


def _part(sub: str, columns: dict) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        pq.write_table(pa.table(columns), root / sub / "part-00001.parquet")
    return write


def orders_part(**overrides) -> Callable[[Path], None]:
    """A second Parquet part of the orders extract: the bad customer's order; `overrides`
    replace (or, as None, drop) columns."""
    columns = {
        "order_id": [BAD_ORDER],
        "customer_id": [BAD_ID],
        "order_ts": pa.array([datetime(2024, 8, 1, 10)], pa.timestamp("us")),
        "status": ["completed"],
    }
    columns.update(overrides)
    return _part("orders/orders", {k: v for k, v in columns.items() if v is not None})


def lines_part(**overrides) -> Callable[[Path], None]:
    """A second Parquet part of the order lines: a line of the bad order (3 x 2.00)."""
    columns = {
        "order_id": [BAD_ORDER],
        "line_no": pa.array([1], pa.int32()),
        "sku": ["Zyxwvut-SKU"],
        "quantity": pa.array([3], pa.int32()),
        "unit_price": pa.array([Decimal("2.00")], pa.decimal128(10, 2)),
    }
    columns.update(overrides)
    return _part("orders/order_lines", {k: v for k, v in columns.items() if v is not None})


def both(*writers: Callable[[Path], None]) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        for w in writers:
            w(root)
    return write


def raw_part(sub: str, content: bytes) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        (root / sub).write_bytes(content)
    return write


def event(**values) -> dict:
    """A preference event of the bad customer, made of marker values; `values` override keys
    (None drops a key)."""
    e = {"event_id": "ZQX9-EVT-6006", "customer_id": BAD_ID, "event_ts": "2024-06-01 10:00:00",
         "field": "channel", "value": PII[2]}
    e.update(values)
    return {k: v for k, v in e.items() if v is not None}


def events(*lines: dict | str | bytes) -> Callable[[Path], None]:
    """A second JSON lines file of the event stream."""
    def write(root: Path) -> None:
        out = b""
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            out += (line if isinstance(line, bytes) else line.encode()) + b"\n"
        (root / "preferences" / "events" / "part-00001.jsonl").write_bytes(out)
    return write


# --- contract and code helpers -----------------------------------------------------------------

def sub(old: str, new: str) -> Callable[[str], str]:
    """Replace `old`, which must be in the file exactly once, with `new`."""
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"the file changed: {old!r} is not in it exactly once"
        return text.replace(old, new)
    return edit


def then(*edits: Callable[[str], str]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        for e in edits:
            text = e(text)
        return text
    return edit


PROFILES = "contracts/profiles.odcs.yaml"
CRM_SOURCE = "sources/crm_export.odcs.yaml"
SEGMENT_RULE = "- {name: segment_is_known, metric: invalidValues, arguments: {validValues: [consumer, smb, enterprise]}, mustBe: 0}"
HAS_CUSTOMERS = "      - {name: has_customers, metric: rowCount, mustBeGreaterThan: 0}\n"


def profiles(edit: Callable[[str], str]) -> dict:
    return {"customer": {PROFILES: edit}}


def table_rule(rule: str) -> dict:
    """The profiles contract with one more table-level quality rule (YAML flow mapping)."""
    return profiles(sub(HAS_CUSTOMERS, HAS_CUSTOMERS + f"      - {rule}\n"))


def sql_rule(query: str, bound: str = "mustBe: 0", name: str = "probe") -> dict:
    return table_rule("{" + f"name: {name}, type: sql, query: {json.dumps(query)}, {bound}" + "}")


def product_code(body: str, decorator: str = '@product(sources=["crm_export"])') -> dict:
    """customer/profiles' function replaced: `body` is its indented body."""
    return {"customer": {"products/profiles.py": (
        f"from mesh_platform import product\n\n\n{decorator}\ndef profiles(ctx):\n{body}"
    )}}


GOOD_SELECT = """\
    ctx.source("crm_export").to_view("crm_export")
    return ctx.sql(
        '''
        SELECT customer_id, trim(first_name) AS first_name, trim(last_name) AS last_name,
               lower(trim(email)) AS email, nullif(upper(trim(country)), '') AS country,
               lower(trim(segment)) AS segment, signup_date, updated_at
        FROM crm_export
        QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC, email) = 1
        '''
    )
"""


def with_inputs(*inputs: str) -> dict:
    """customer/profiles declaring `inputs` (it still computes from its source)."""
    return product_code(GOOD_SELECT, f"@product(sources=[\"crm_export\"], inputs={list(inputs)!r})")


# --- verifications of positive controls --------------------------------------------------------

def same_rows(before, after, result) -> None:
    assert after.rows == before.rows


def row_of(published, customer_id: str) -> dict:
    [row] = [r for r in published.rows if r["customer_id"] == customer_id]
    return row


def bad_customer(**expected) -> Callable:
    def verify(before, after, result) -> None:
        row = row_of(after, BAD_ID)
        for k, v in expected.items():
            assert row[k] == v, (k, row[k], v)
        assert [r for r in after.rows if r["customer_id"] != BAD_ID] == before.rows
    return verify


def volume_numbers(before, after, result) -> None:
    [volume] = [e for e in result.get_asset_check_evaluations()
                if e.check_name == "volume" and e.asset_key.to_user_string() == "customer/profiles"]
    meta = {k: v.value for k, v in volume.metadata.items()}
    assert meta == {"rows": 2, "previous_rows": 4, "max_drop_percent": 25.0, "drop_percent": 50.0}, meta
    assert volume.severity.value == "ERROR"


def accepted_drop(before, after, result) -> None:
    assert [r["customer_id"] for r in after.rows] == ["C001", "C002"]
    [volume] = [e for e in result.get_asset_check_evaluations()
                if e.check_name == "volume" and e.asset_key.to_user_string() == "customer/profiles"]
    assert volume.passed and volume.metadata["accepted_by_tag"].value is True
    assert volume.metadata["drop_percent"].value == 50.0


def warning_only(before, after, result) -> None:
    assert row_of(after, BAD_ID)["segment"] == "vip"
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "segment_is_known"]
    assert not check.passed and check.severity.value == "WARN"


def blocking_check(rule: str) -> Callable:
    """`rule` failed as a blocking check (an error, not a warning) and is what blocked the publish."""
    def verify(before, after, result) -> None:
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == rule]
        assert check.blocking and check.severity.value == "ERROR", check
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_failure_data.user_failure_data.metadata["failed_checks"].value == [rule]
    return verify


# --- the corpus --------------------------------------------------------------------------------

CSV_FILE = "{landing}/customer/crm_export.csv"
CSV = ("source 'crm_export'", "domains/customer/sources/crm_export.odcs.yaml", CSV_FILE)
NOTHING = "customer/profiles: "  # every failure names the product first

CSV_CASES = [
    Case("csv-nul-byte", "csv", "customer", "failed", (*CSV, "column 'first_name' holds a NUL byte", "nothing published"),
         landing=crm_with(crm_row(first_name="Zyxw\x00vut-" + PII[0]))),
    Case("csv-utf8-bom-accepted", "csv", "customer", "published",
         landing=crm(b"\xef\xbb\xbf" + GOOD_CRM.encode()), verify=same_rows),
    Case("csv-crlf-line-ends-accepted", "csv", "customer", "published",
         landing=crm(GOOD_CRM.replace("\n", "\r\n")), verify=same_rows),
    Case("csv-quoted-comma-quote-and-line-break-accepted", "csv", "customer", "published",
         landing=crm_with(crm_row(last_name='"Qwer,tz ""the"" \nuiop"')),
         verify=bad_customer(last_name='Qwer,tz "the" \nuiop')),
    Case("csv-latin1", "csv", "customer", "failed", (*CSV, "not UTF-8 text", "export it as UTF-8"),
         landing=crm((GOOD_CRM + crm_row(first_name="Zoë") + "\n").encode("latin-1"))),
    Case("csv-latin1-past-the-first-block", "csv", "customer", "failed", (*CSV, "line 3007: not UTF-8 text; export it as UTF-8 (column 'first_name')"),
         landing=crm((GOOD_CRM + FILLER + crm_row(first_name="Zoë") + "\n").encode("latin-1"))),
    Case("csv-10mb-field", "csv", "customer", "failed", (*CSV, "line 7: a line is longer than DuckDB's 2,000,000-byte limit"),
         landing=crm_with(crm_row(first_name=PII[0] * 1_500_000))),
    Case("csv-unterminated-quote", "csv", "customer", "failed", (*CSV, "line 7: a quoted field is never closed, or text follows its closing quote"),
         landing=crm_with(crm_row(first_name='"' + PII[0]))),
    Case("csv-header-columns-swapped", "csv", "customer", "failed",
         (*CSV, "the header line does not match the contract's columns ['customer_id', 'first_name', 'last_name'",
          "the same columns in another order: field 2 should be 'first_name'"),
         landing=crm(GOOD_CRM.replace("first_name,last_name", "last_name,first_name", 1))),
    Case("csv-no-header-line", "csv", "customer", "failed",
         (*CSV, "the header line does not match the contract's columns",
          "missing ['customer_id', 'first_name', 'last_name', 'email', 'country', 'segment', 'signup_date', 'updated_at']",
          "8 fields that are no contract column", "the line is not shown"),
         landing=crm(crm_row() + "\n" + GOOD_CRM.split("\n", 1)[1])),
    Case("csv-semicolon-delimited", "csv", "customer", "failed",
         (*CSV, "the header line does not match the contract's columns", "1 field where the contract has 8 columns"),
         landing=crm(GOOD_CRM.replace(",", ";"))),
    Case("csv-extra-field-in-a-row", "csv", "customer", "failed", (*CSV, "line 7: too many columns"),
         landing=crm_with(crm_row() + ",Zyxwvut-extra")),
    Case("csv-last-row-cut-mid-line", "csv", "customer", "failed", (*CSV, "line 7: missing columns (column 'country')"),
         landing=crm(GOOD_CRM + crm_row()[:40])),
    Case("csv-impossible-date", "csv", "customer", "failed", (*CSV, "column 'signup_date' holds a value that is not a DATE"),
         landing=crm_with(crm_row(signup_date="2024-02-30"))),
    Case("csv-required-value-missing", "csv", "customer", "failed",
         (*CSV, "column 'updated_at' is required but a row has no value"),
         landing=crm_with(crm_row(updated_at=""))),
    Case("csv-impossible-timestamp", "csv", "customer", "failed",
         (*CSV, "column 'updated_at' holds a value that is not a TIMESTAMP"),
         landing=crm_with(crm_row(updated_at="2024-04-02 25:61:00"))),
    Case("csv-offset-converted-to-utc", "csv", "customer", "published",
         landing=crm_with(crm_row(updated_at="2024-04-02 11:00:00+02:00")),
         verify=bad_customer(updated_at=datetime(2024, 4, 2, 9))),
    Case("csv-export-cut-in-half", "csv", "customer", "failed",
         (NOTHING, "rule 'volume'", "2 rows against 4 published (-50.0%)", "more than the 25% the contract allows",
          f"{ALLOW_DROP_TAG}=true"),
         landing=crm("".join(GOOD_CRM.splitlines(keepends=True)[:3])), checks={"volume": False}, verify=volume_numbers),
    Case("csv-export-cut-in-half-allowed-by-tag", "csv", "customer", "published",
         landing=crm("".join(GOOD_CRM.splitlines(keepends=True)[:3])), tags={ALLOW_DROP_TAG: "true"},
         verify=accepted_drop),
    Case("csv-header-only", "csv", "customer", "failed", (NOTHING, "rule 'has_customers'", "rule 'volume'"),
         landing=crm(CRM_HEADER + "\n"), checks={"has_customers": False, "volume": False}),
    Case("csv-override-matches-no-file", "csv", "customer", "failed",
         ("source 'crm_export'", "no file matches /nonexistent/exports/crm-*.csv"),
         env={"MESH_SOURCE_CUSTOMER_CRM_EXPORT": "/nonexistent/exports/crm-*.csv"}),
    Case("csv-symlink-out-of-the-landing-root", "csv", "customer", "failed",
         ("source 'crm_export'", CSV_FILE, "leads outside the landing root"), landing=crm_symlink_outside),
]

ORDERS_SRC = ("source 'orders'", "domains/orders/sources/orders.odcs.yaml", "{landing}/orders/orders/part-00001.parquet")
LINES_SRC = ("source 'order_lines'", "domains/orders/sources/order_lines.odcs.yaml",
             "{landing}/orders/order_lines/part-00001.parquet")
UTC_PLUS_2 = timezone(timedelta(hours=2))

PARQUET_CASES = [
    Case("parquet-quantity-stored-as-decimal", "parquet", "orders", "failed",
         (*LINES_SRC, "column 'quantity' is stored as DECIMAL(3,2), which does not convert to the contract's INTEGER "
          "without loss"),
         landing=both(orders_part(), lines_part(quantity=pa.array([Decimal("2.50")], pa.decimal128(3, 2))))),
    Case("parquet-customer-id-stored-as-bigint", "parquet", "orders", "failed",
         (*ORDERS_SRC, "column 'customer_id' is stored as BIGINT, which does not convert to the contract's VARCHAR"),
         landing=orders_part(customer_id=pa.array([7319004417], pa.int64()))),
    Case("parquet-int32-widens-to-bigint", "parquet", "orders", "published",
         edits={"orders": {"sources/order_lines.odcs.yaml": sub(
             "{name: quantity, logicalType: integer, physicalType: INTEGER", "{name: quantity, logicalType: integer, physicalType: BIGINT")}},
         landing=both(orders_part(), lines_part()), verify=bad_customer(lifetime_value=Decimal("6.00"))),
    Case("parquet-int16-widens-to-integer", "parquet", "orders", "published",
         landing=both(orders_part(), lines_part(quantity=pa.array([3], pa.int16()))),
         verify=bad_customer(lifetime_value=Decimal("6.00"))),
    Case("parquet-column-missing-in-one-part", "parquet", "orders", "failed", (*ORDERS_SRC, "missing columns ['status']"),
         landing=orders_part(status=None)),
    Case("parquet-timestamp-with-time-zone-converted-to-utc", "parquet", "orders", "published",
         landing=orders_part(order_ts=pa.array([datetime(2024, 8, 1, 12, tzinfo=UTC_PLUS_2)], pa.timestamp("us", tz="+02:00"))),
         verify=bad_customer(first_order_at=datetime(2024, 8, 1, 10), last_order_at=datetime(2024, 8, 1, 10))),
    Case("parquet-timestamp-ns-with-nanoseconds", "parquet", "orders", "failed",
         (*ORDERS_SRC, "column 'order_ts' holds nanoseconds, which TIMESTAMP (microseconds) cannot keep"),
         landing=orders_part(order_ts=pa.array([1722506400_000_000_123], pa.timestamp("ns")))),
    Case("parquet-timestamp-ns-whole-microseconds-accepted", "parquet", "orders", "published",
         landing=orders_part(order_ts=pa.array([1722506400_000_001_000], pa.timestamp("ns"))),
         verify=bad_customer(first_order_at=datetime(2024, 8, 1, 10, 0, 0, 1))),
    Case("parquet-required-value-null", "parquet", "orders", "failed",
         (*ORDERS_SRC, "column 'order_id' is required but a row has no value"),
         landing=orders_part(order_id=pa.array([None], pa.string()))),
    Case("parquet-file-is-not-parquet", "parquet", "orders", "failed", (*ORDERS_SRC, "not a readable Parquet file"),
         landing=raw_part("orders/orders/part-00001.parquet", (CRM_HEADER + "\n" + crm_row() + "\n").encode())),
    Case("parquet-unit-price-stored-as-double", "parquet", "orders", "failed",
         (*LINES_SRC, "column 'unit_price' is stored as DOUBLE, which does not convert to the contract's DECIMAL(10,2)"),
         landing=lines_part(unit_price=pa.array([2.0], pa.float64()))),
    Case("parquet-unit-price-more-decimals", "parquet", "orders", "failed",
         (*LINES_SRC, "column 'unit_price' is stored as DECIMAL(12,4), which does not convert to the contract's DECIMAL(10,2)"),
         landing=lines_part(unit_price=pa.array([Decimal("2.0001")], pa.decimal128(12, 4)))),
    Case("parquet-line-no-stored-as-text", "parquet", "orders", "failed",
         (*LINES_SRC, "column 'line_no' is stored as VARCHAR, which does not convert to the contract's INTEGER"),
         landing=lines_part(line_no=["1"])),
    Case("parquet-order-ts-stored-as-text", "parquet", "orders", "failed",
         (*ORDERS_SRC, "column 'order_ts' is stored as VARCHAR, which does not convert to the contract's TIMESTAMP"),
         landing=orders_part(order_ts=["2024-08-01 10:00:00"])),
    Case("parquet-no-part-files", "parquet", "orders", "failed",
         ("source 'order_lines'", "no file matches {landing}/orders/order_lines/*.parquet"),
         landing=lambda root: (root / "orders/order_lines/part-00000.parquet").unlink()),
    Case("parquet-line-no-unsigned-64", "parquet", "orders", "failed",
         (*LINES_SRC, "column 'line_no' is stored as UBIGINT, which does not convert to the contract's INTEGER"),
         landing=lines_part(line_no=pa.array([1], pa.uint64()))),
]

JSONL_FILE = "{landing}/preferences/events/part-00001.jsonl"
JSONL = ("source 'preference_events'", "domains/preferences/sources/preference_events.odcs.yaml", JSONL_FILE)

JSONL_CASES = [
    Case("jsonl-event-without-field", "jsonl", "preferences", "failed",
         (*JSONL, "column 'field' is required but a row has no value"), landing=events(event(field=None))),
    Case("jsonl-offset-converted-to-utc", "jsonl", "preferences", "published",
         landing=events(event(event_ts="2024-06-01T10:00:00+02:00", value="email")),
         verify=bad_customer(updated_at=datetime(2024, 6, 1, 8), channel="email")),
    Case("jsonl-number-where-a-string-is-expected", "jsonl", "preferences", "failed",
         (*JSONL, "column 'customer_id' is stored as JSON", "which does not convert to the contract's VARCHAR"),
         landing=events(event(customer_id=7319004417))),
    Case("jsonl-boolean-where-a-string-is-expected", "jsonl", "preferences", "failed",
         (*JSONL, "column 'field' is stored as JSON BOOLEAN, which does not convert to the contract's VARCHAR"),
         landing=events(event(field=True))),
    Case("jsonl-string-where-a-boolean-is-expected", "jsonl", "preferences", "failed",
         ("source 'preference_events'", "{folder}/sources/preference_events.odcs.yaml", JSONL_FILE,
          "column 'test_event' is stored as JSON VARCHAR, which does not convert to the contract's BOOLEAN"),
         edits={"preferences": {
             "sources/preference_events.odcs.yaml": lambda t: t + "      - {name: test_event, logicalType: boolean, physicalType: BOOLEAN}\n",
             "products/settings.py": sub("FROM preference_events\n", "FROM preference_events\n            WHERE NOT coalesce(test_event, false)\n"),
         }},
         landing=events(event(test_event="yes"))),
    Case("jsonl-string-where-the-product-expects-a-boolean", "jsonl", "preferences", "failed",
         ("preferences/settings", "computing the output failed", "Conversion error", "::BOOLEAN"),
         landing=events(event(field="marketing_opt_in", value=PII[0]))),
    Case("jsonl-malformed-line", "jsonl", "preferences", "failed",
         (*JSONL, "line 2: not valid JSON (Unterminated string starting at column 127)"),
         landing=events(event(event_id="ZQX9-EVT-7007"), json.dumps(event())[:-12])),
    Case("jsonl-impossible-timestamp", "jsonl", "preferences", "failed",
         (*JSONL, "column 'event_ts' holds a value that is not a TIMESTAMP"),
         landing=events(event(event_ts="2024-06-31T10:00:00"))),
    Case("jsonl-epoch-number-timestamp", "jsonl", "preferences", "failed",
         (*JSONL, "column 'event_ts' is stored as JSON", "which does not convert to the contract's TIMESTAMP"),
         landing=events(event(event_ts=1717236000))),
    Case("jsonl-nul-in-a-string", "jsonl", "preferences", "failed", (*JSONL, "column 'customer_id' holds a NUL byte"),
         landing=events(event(customer_id=BAD_ID + "\u0000"))),
    Case("jsonl-line-is-not-an-object", "jsonl", "preferences", "failed", (*JSONL, "line 1: not a JSON object but an array"),
         landing=events(json.dumps([BAD_ID, PII[2]]))),
    Case("jsonl-duplicate-key", "jsonl", "preferences", "failed", (*JSONL, "line 1: key 'field' appears twice in one object"),
         landing=events(json.dumps(event()).replace('"field": "channel"', '"field": "channel", "field": "Zyxwvut"'))),
    Case("jsonl-not-utf8", "jsonl", "preferences", "failed",
         (*JSONL, "line 1: not UTF-8 text (invalid continuation byte); export it as UTF-8"),
         landing=events(json.dumps(event(value="Zoë"), ensure_ascii=False).encode("latin-1"))),
]

CONTRACT = "{folder}/contracts/profiles.odcs.yaml"
SQL_RULE = (NOTHING, CONTRACT, "quality rule 'probe'", "rule 'probe'")
ALIAS_BOMB = "x-bomb:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

CONTRACT_CASES = [
    Case("contract-severity-critical-blocks", "contract", "customer", "failed",
         (NOTHING, "rule 'segment_is_known'"),
         edits=profiles(sub(SEGMENT_RULE, SEGMENT_RULE.replace("mustBe: 0}", "mustBe: 0, severity: critical}"))),
         landing=crm_with(crm_row(segment="vip")), markers=ALL_PII, checks={"segment_is_known": False},
         verify=blocking_check("segment_is_known")),
    Case("contract-severity-warning-does-not-block", "contract", "customer", "published",
         edits=profiles(sub(SEGMENT_RULE, SEGMENT_RULE.replace("mustBe: 0}", "mustBe: 0, severity: warning}"))),
         landing=crm_with(crm_row(segment="vip")), markers=ALL_PII, verify=warning_only),
    Case("contract-severity-unknown", "contract", "customer", "load_error",
         (CONTRACT, "unknown severity 'fatal'", "'critical'"),
         edits=profiles(sub(SEGMENT_RULE, SEGMENT_RULE.replace("mustBe: 0}", "mustBe: 0, severity: fatal}"))),
         field="schema[0].properties[5].quality[0].severity"),
    Case("contract-duplicate-yaml-key", "contract", "customer", "load_error",
         (CONTRACT, "key 'version' appears twice", "line 6"),
         edits=profiles(sub("version: 1.0.0\n", "version: 1.0.0\nversion: 2.0.0\n")), field="(yaml)"),
    Case("contract-yaml-alias-bomb", "contract", "customer", "load_error",
         (CONTRACT, "aliases (*name) are not allowed"),
         edits=profiles(lambda t: t + ALIAS_BOMB), field="(yaml)", within=2.0),
    Case("contract-decimal-unquoted-in-flow-mapping", "contract", "orders", "load_error",
         ("{folder}/sources/order_lines.odcs.yaml", "schema[0].properties[4]", 'physicalType: "DECIMAL(18,2)"'),
         edits={"orders": {"sources/order_lines.odcs.yaml": sub('physicalType: "DECIMAL(10,2)"', "physicalType: DECIMAL(10,2)")}},
         field="schema[0].properties[4]"),
    Case("contract-unknown-metric", "contract", "customer", "load_error", (CONTRACT, "'notAMetric' is not one of ['nullValues', 'missingValues', 'invalidValues', 'duplicateValues', 'rowCount']"),
         edits=profiles(sub("metric: invalidValues", "metric: notAMetric")),
         field="schema[0].properties[5].quality[0].metric"),
    Case("contract-rule-names-unknown-column", "contract", "customer", "load_error",
         (CONTRACT, "rule 'tier_known' names unknown columns ['tier']"),
         edits=table_rule("{name: tier_known, type: custom, engine: greatExpectations, implementation: "
                          "{type: expect_column_values_to_not_be_null, kwargs: {column: tier}}}"),
         field="quality"),
    Case("contract-unknown-column-type", "contract", "customer", "load_error",
         (CONTRACT, "unknown column type 'VARCHAR2' for column 'customer_id'"),
         edits=profiles(sub("physicalType: VARCHAR, primaryKey", "physicalType: VARCHAR2, primaryKey")),
         field="schema[0].properties[0].physicalType"),
    Case("contract-source-path-escapes-with-dotdot", "contract", "customer", "load_error",
         ("{folder}/sources/crm_export.odcs.yaml", "'../../../etc/passwd' must be a relative path inside the landing root",
          "MESH_SOURCE_CUSTOMER_CRM_EXPORT"),
         edits={"customer": {CRM_SOURCE: sub("path: customer/crm_export.csv", "path: ../../../etc/passwd")}},
         field="servers[0].path"),
    Case("contract-source-path-absolute", "contract", "customer", "load_error",
         ("{folder}/sources/crm_export.odcs.yaml", "'/etc/passwd' must be a relative path inside the landing root"),
         edits={"customer": {CRM_SOURCE: sub("path: customer/crm_export.csv", "path: /etc/passwd")}},
         field="servers[0].path"),
    Case("contract-override-env-var-misspelt", "contract", "preferences", "load_error",
         ("MESH_SOURCE_PREFERENCES_EVENTS", "names no landing source", "MESH_SOURCE_PREFERENCES_PREFERENCE_EVENTS",
          "MESH_SOURCE_CUSTOMER_CRM_EXPORT"),
         env={"MESH_SOURCE_PREFERENCES_EVENTS": "/data/events/*.jsonl"}, field="(environment)"),
    Case("contract-policy-no-freshness-sla", "contract", "customer", "load_error",
         (CONTRACT, "slaProperties", "policy freshness-sla", "no latency SLA"),
         edits=profiles(sub("  - {property: latency, value: 26, unit: h, description: Refreshed daily at 02:00 UTC.}\n", "  []\n")),
         error=PolicyError, field="slaProperties"),
    Case("contract-policy-pii-column-unclassified", "contract", "customer", "load_error",
         (CONTRACT, "policy personal-data-classified", "column 'email' looks like personal data (email)"),
         edits=profiles(sub("physicalType: VARCHAR\n        classification: PII\n", "physicalType: VARCHAR\n")),
         error=PolicyError, field="schema[0].properties[3].classification"),
    Case("contract-policy-waiver-expired", "contract", "customer", "load_error",
         (CONTRACT, "customProperties.policyWaivers[0]", "waiver of freshness-sla expired on 2020-01-31"),
         edits=profiles(then(
             sub("  - {property: latency, value: 26, unit: h, description: Refreshed daily at 02:00 UTC.}\n", "  []\n"),
             lambda t: t + "customProperties:\n  - property: policyWaivers\n    value:\n"
                           "      - {policy: freshness-sla, reason: Refreshed by hand, expires: 2020-01-31}\n")),
         error=PolicyError, field="customProperties.policyWaivers[0]"),
    Case("contract-policy-pii-granted-in-the-clear", "contract", "customer", "load_error",
         (CONTRACT, "policy pii-readers", "'orders' would read classified columns ['email', 'first_name', 'last_name']"),
         edits=profiles(sub("roles:\n", "roles:\n  - {role: orders, access: read}\n")),
         error=PolicyError, field="roles[0]"),
    Case("contract-policy-version-not-semantic", "contract", "customer", "load_error",
         (CONTRACT, "policy semantic-version", "'1.0' is not MAJOR.MINOR.PATCH"),
         edits=profiles(sub("version: 1.0.0\n", "version: '1.0'\n")), error=PolicyError, field="version"),
    Case("contract-api-version-v2", "contract", "customer", "load_error", (CONTRACT, "ODCS v3 required, got v2.2.2"),
         edits=profiles(sub("apiVersion: v3.1.0", "apiVersion: v2.2.2")), field="apiVersion"),
    Case("contract-domain-not-its-folder", "contract", "customer", "load_error",
         (CONTRACT, "'orders' but the file lives in domain 'customer'"),
         edits=profiles(sub("domain: customer\n", "domain: orders\n")), field="domain"),
    Case("contract-name-not-its-file-name", "contract", "customer", "load_error",
         (CONTRACT, "'clients' must match the file name"),
         edits=profiles(sub("  - name: profiles\n", "  - name: clients\n")), field="schema[0].name"),
    Case("contract-duplicate-column", "contract", "customer", "load_error", (CONTRACT, "duplicate columns ['last_name']"),
         edits=profiles(sub("{name: first_name, logicalType", "{name: last_name, logicalType")), field="schema[0].properties"),
    Case("contract-volume-percent-out-of-range", "contract", "customer", "load_error",
         (CONTRACT, "a percent (0-100) or 'off', got 150"),
         edits=profiles(lambda t: t + "customProperties:\n  - {property: volumeMaxDropPercent, value: 150}\n"),
         field="customProperties.volumeMaxDropPercent"),
    Case("contract-sql-rule-without-bound", "contract", "customer", "load_error",
         (CONTRACT, "not valid ODCS: needs one of ['mustBe', 'mustNotBe', 'mustBeGreaterThan', 'mustBeGreaterOrEqualTo', "
          "'mustBeLessThan', 'mustBeLessOrEqualTo', 'mustBeBetween', 'mustNotBeBetween']"),
         edits=table_rule("{name: probe, type: sql, query: SELECT 0}"), field="schema[0].quality[1]"),
    Case("contract-latency-unit-unknown", "contract", "customer", "load_error",
         (CONTRACT, "latency needs a positive number and a unit"),
         edits=profiles(sub("value: 26, unit: h,", "value: 2, unit: fortnights,")), field="slaProperties[0]"),
    Case("contract-grant-masks-unknown-column", "contract", "customer", "load_error",
         (CONTRACT, "unknown columns ['phone']"),
         edits=profiles(sub("  - {role: federation, access: read, description: The platform's federated products.}",
                            "  - {role: federation, access: read, customProperties: [{property: mask, value: [phone]}]}")),
         field="roles[0].customProperties.mask"),
    Case("contract-not-utf8", "contract", "customer", "load_error", (CONTRACT, "utf-8"),
         edits=profiles(lambda t: t.replace("Current customer records.", "Clients, état courant.").encode("latin-1")),
         field="(yaml)"),
    Case("contract-sql-rule-syntax-error", "contract", "customer", "failed",
         (*SQL_RULE, "not valid SQL", "SELEC"), edits=sql_rule("SELEC count(*) FROM ${object}"),
         checks={"probe": False}),
    Case("contract-sql-rule-returns-no-rows", "contract", "customer", "failed",
         (*SQL_RULE, "the query returned no rows; a sql rule returns one row with one number"),
         edits=sql_rule("SELECT 1 FROM ${object} WHERE false"), checks={"probe": False}),
    Case("contract-sql-rule-returns-a-string", "contract", "customer", "failed",
         (*SQL_RULE, "returned a str (not shown: it may be data) where a number is expected"),
         edits=sql_rule("SELECT max(email) FROM ${object}", "mustBeGreaterThan: 0"), checks={"probe": False}),
    Case("contract-sql-rule-is-copy", "contract", "customer", "failed",
         (*SQL_RULE, "must be exactly one SELECT statement, got ['COPY']"),
         edits=sql_rule("COPY (SELECT * FROM ${object}) TO '/tmp/zqx9-leak.csv'"), checks={"probe": False}),
    Case("contract-sql-rule-two-statements", "contract", "customer", "failed",
         (*SQL_RULE, "must be exactly one SELECT statement, got ['SELECT', 'SELECT']"),
         edits=sql_rule("SELECT 0; SELECT count(*) FROM ${object}"), checks={"probe": False}),
    Case("contract-sql-rule-unknown-table", "contract", "customer", "failed",
         (*SQL_RULE, "the query failed: Catalog", "nope"),
         edits=sql_rule("SELECT count(*) FROM nope"), checks={"probe": False}),
    Case("contract-sql-rule-cast-fails-on-a-value", "contract", "customer", "failed",
         (*SQL_RULE, "the query failed: Conversion", "withheld"),
         edits=sql_rule("SELECT count(*) FROM ${object} WHERE CAST(email AS INTEGER) > 0"), checks={"probe": False}),
    Case("contract-sql-rule-bound-not-a-number", "contract", "customer", "load_error",
         (CONTRACT, "a sql rule's query returns a number, compared with a number; got 'zero'"),
         edits=sql_rule("SELECT count(*) FROM ${object}", "mustBe: zero"), field="schema[0].quality[1].mustBe"),
    Case("contract-sql-rule-property-on-the-table", "contract", "customer", "load_error",
         (CONTRACT, "${property} is the column of a rule on a column; this rule is on the table: name the column"),
         edits=sql_rule("SELECT count(*) FROM ${object} WHERE ${property} IS NULL"), field="schema[0].quality[1].query"),
    Case("contract-expectation-on-a-column-of-another-type", "contract", "customer", "failed",
         (NOTHING, CONTRACT, "quality rule 'signup_len': cannot be evaluated on the output: Binder: ",
          "'length(DATE)'"),
         edits=profiles(sub("      - {name: signup_date, logicalType: date, physicalType: DATE, required: true}\n",
                            "      - name: signup_date\n        logicalType: date\n        physicalType: DATE\n"
                            "        required: true\n        quality:\n          - {name: signup_len, type: custom, "
                            "engine: greatExpectations, implementation: {type: expect_column_value_lengths_to_equal, "
                            "kwargs: {value: 10}}}\n")),
         checks={"signup_len": False}),
    Case("contract-unique-column-nulls-are-not-duplicates", "contract", "customer", "published",
         edits=profiles(sub("ISO 3166-1 alpha-2, upper-cased and trimmed; null when the CRM has none.\n",
                            "ISO 3166-1 alpha-2, upper-cased and trimmed; null when the CRM has none.\n        unique: true\n")),
         landing=crm_with(crm_row(country="")),
         verify=bad_customer(country=None)),
    Case("contract-unique-column-equal-values", "contract", "customer", "failed",
         (NOTHING, "rule 'schema'", "(country) is unique: 1 offending rows"),
         edits=profiles(sub("ISO 3166-1 alpha-2, upper-cased and trimmed; null when the CRM has none.\n",
                            "ISO 3166-1 alpha-2, upper-cased and trimmed; null when the CRM has none.\n        unique: true\n")),
         landing=crm_with(crm_row(country="FR")), markers=ALL_PII, checks={"schema": False}),
]

PRODUCT_FILE = "{folder}/products/profiles.py"

PRODUCT_CASES = [
    Case("product-inputs-typo", "product", "customer", "load_error",
         (PRODUCT_FILE, "'orders/histroy' is not a product of the workspace; did you mean 'orders/history'?"),
         edits=with_inputs("orders/histroy"), field="@product profiles: inputs"),
    Case("product-input-not-granted", "product", "customer", "load_error",
         (PRODUCT_FILE, "'federation/customer_360' is not granted to 'customer'",
          "mesh_platform/federation/contracts/customer_360.odcs.yaml", "roles: ['domain-team']"),
         # customer_360 reads customer/profiles: the federation's load sees the cycle this closes.
         edits=with_inputs("federation/customer_360"), field="@product profiles: inputs", broken=("federation",)),
    Case("product-inputs-cycle-across-locations", "product", "customer", "load_error",
         (PRODUCT_FILE, "a cycle of inputs: customer/profiles reads federation/customer_360 reads customer/profiles"),
         edits={**with_inputs("federation/customer_360"),
                "federation": {"contracts/customer_360.odcs.yaml": sub(
                    "roles:\n", "roles:\n  - {role: customer, access: read}\n")}},
         field="@product profiles: inputs", broken=("federation",)),
    Case("product-undeclared-source-at-load", "product", "customer", "load_error",
         (PRODUCT_FILE, "undeclared sources ['crm']"),
         edits=product_code(GOOD_SELECT, '@product(sources=["crm"])'), field="profiles"),
    Case("product-function-without-contract", "product", "customer", "load_error",
         ("{folder}/products/loyalty.py", "@product 'loyalty' has no contract", "{folder}/contracts/loyalty.odcs.yaml"),
         edits={"customer": {"products/loyalty.py": "from mesh_platform import product\n\n\n"
                             "@product(sources=['crm_export'])\ndef loyalty(ctx):\n    return ctx.sql('SELECT 1 AS x')\n"}},
         field="loyalty"),
    Case("product-contract-without-function", "product", "customer", "load_error",
         (CONTRACT, "no @product function 'profiles'"),
         edits={"customer": {"products/profiles.py": "# emptied\n"}}, field="schema[0].name"),
    Case("product-returns-wrong-type", "product", "customer", "failed",
         (NOTHING, "the product function must return a relation or an Arrow table, got list"),
         edits=product_code('    return ctx.source("crm_export").fetchall()\n')),
    Case("product-returns-wrong-column-types", "product", "customer", "failed",
         (NOTHING, "rule 'schema'", "wrong types", "'signup_date': 'VARCHAR (contract: DATE)'"),
         edits=product_code(GOOD_SELECT.replace("signup_date, updated_at", "CAST(signup_date AS VARCHAR) AS signup_date, updated_at")),
         checks={"schema": False}),
    Case("product-returns-missing-column", "product", "customer", "failed",
         (NOTHING, "rule 'schema'", "missing columns ['segment']"),
         edits=product_code(GOOD_SELECT.replace("lower(trim(segment)) AS segment, ", "")), checks={"schema": False}),
    Case("product-returns-arrow-with-wrong-types", "product", "customer", "failed",
         (NOTHING, "rule 'schema'", "missing columns", "wrong types {'customer_id': 'BIGINT (contract: VARCHAR)'}"),
         edits=product_code("    import pyarrow as pa\n\n    return pa.table({'customer_id': [1], 'first_name': ['x']})\n"),
         checks={"schema": False}),
    Case("product-returns-a-column-twice", "product", "customer", "failed",
         (NOTHING, "the output has more than one column named ['country']"),
         edits=product_code(GOOD_SELECT.replace("nullif(upper(trim(country)), '') AS country,",
                                                "length(country) AS country, nullif(upper(trim(country)), '') AS country,"))),
    Case("product-sql-names-an-unknown-column", "product", "customer", "failed",
         (NOTHING, "Binder error in the product's SQL", "tier"),
         edits=product_code(GOOD_SELECT.replace("lower(trim(segment)) AS segment", "lower(trim(tier)) AS segment"))),
    Case("product-view-named-like-the-audited-output", "product", "customer", "failed",
         (NOTHING, "view name 'mesh_output': a plain identifier not starting with mesh_ or upstream_"),
         edits=product_code('    ctx.source("crm_export").to_view("mesh_output")\n' + GOOD_SELECT)),
    Case("product-reads-undeclared-source", "product", "customer", "failed",
         (NOTHING, "source 'orders' is not declared in @product(sources=...)"),
         edits=product_code('    ctx.source("orders")\n' + GOOD_SELECT)),
    Case("product-reads-undeclared-input", "product", "customer", "failed",
         (NOTHING, "'orders/history' is not declared in @product(inputs=...)"),
         edits=product_code('    ctx.product("orders/history")\n' + GOOD_SELECT)),
    Case("product-sql-copy", "product", "customer", "failed",
         (NOTHING, "ctx.sql: must be exactly one SELECT statement, got ['COPY']"),
         edits=product_code('    ctx.source("crm_export").to_view("crm")\n'
                            '    ctx.sql("COPY crm TO \'/tmp/zqx9-leak.csv\'")\n' + GOOD_SELECT)),
    Case("product-sql-attach", "product", "customer", "failed",
         (NOTHING, "ctx.sql: must be exactly one SELECT statement, got ['ATTACH']"),
         edits=product_code('    ctx.sql("ATTACH \'/tmp/zqx9.db\' AS other")\n' + GOOD_SELECT)),
    Case("product-sql-set", "product", "customer", "failed",
         (NOTHING, "ctx.sql: must be exactly one SELECT statement, got ['SET']"),
         edits=product_code('    ctx.sql("SET enable_external_access = true")\n' + GOOD_SELECT)),
    Case("product-sql-install", "product", "customer", "failed",
         (NOTHING, "ctx.sql: must be exactly one SELECT statement, got ['LOAD']"),
         edits=product_code('    ctx.sql("INSTALL httpfs")\n' + GOOD_SELECT)),
    Case("product-relation-to-parquet", "product", "customer", "failed",
         (NOTHING, "Relation.to_parquet is not available to product code"),
         edits=product_code('    ctx.source("crm_export").to_parquet("/tmp/zqx9-leak.parquet")\n' + GOOD_SELECT)),
    Case("product-relation-query", "product", "customer", "failed",
         (NOTHING, "Relation.query is not available to product code"),
         edits=product_code('    ctx.source("crm_export").query("crm", "COPY crm TO \'/tmp/zqx9-leak.csv\'")\n' + GOOD_SELECT)),
    Case("product-reads-a-file-outside-the-sandbox", "product", "customer", "failed",
         (NOTHING, "computing the output failed"),
         edits=product_code('    return ctx.sql("SELECT * FROM read_csv(\'/etc/passwd\')")\n'),
         markers=(*MARKERS, "root:x:0:0", "/bin/bash", "/usr/sbin/nologin")),
    Case("product-sql-cast-fails-on-a-value", "product", "customer", "failed",
         (NOTHING, "computing the output failed", "Conversion error", "CAST(first_name AS INTEGER)"),
         edits=product_code(GOOD_SELECT.replace("trim(first_name) AS first_name", "CAST(first_name AS INTEGER)::VARCHAR AS first_name"))),
]

CASES = [*CSV_CASES, *PARQUET_CASES, *JSONL_CASES, *CONTRACT_CASES, *PRODUCT_CASES]
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
assert all(c.kind in KINDS and c.id.startswith(c.kind) for c in CASES)
assert all(c.outcome in ("load_error", "failed", "published") for c in CASES)

"""Deterministic generator of realistic landing data for the three source contracts.

Customers are produced in fixed-size chunks with vectorised numpy code, and each chunk is
written out before the next one is built, so memory stays flat and run time grows linearly.
Every (chunk, dataset) pair draws from its own random stream, so the files depend only on
(customers, seed) and are byte-identical between runs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from math import comb
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

CHUNK = 100_000  # customers per chunk: one Parquet/JSONL part per chunk

DAY = 86_400
FIRST_SIGNUP = int(np.datetime64("2018-01-01", "s").astype(np.int64))
SIGNUP_DAYS = int((np.datetime64("2025-12-31") - np.datetime64("2018-01-01")).astype(int)) + 1
CUTOFF = int(np.datetime64("2026-06-30T23:59:59", "s").astype(np.int64))  # extract date

FIRST_NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jan",
               "Julia", "Lars", "Lea", "Lucas", "Maria", "Max", "Nina", "Noah", "Olivia", "Paul",
               "Sophie", "Tom", "Ula", "Victor"]
LAST_NAMES = ["Smith", "Mueller", "Martin", "Jansen", "Garcia", "Rossi", "Brown", "Schmidt",
              "Dubois", "deVries", "Lopez", "Bianchi", "Wilson", "Fischer", "Bernard", "Bakker",
              "Taylor", "Weber", "Moreau", "Visser", "Jones", "Wagner", "Romero", "Ricci"]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net"]
COUNTRIES = (["DE", "FR", "NL", "US", "GB", "ES", "IT", "AT", "BE", "CH", "PL", "SE", "DK"],
             [0.24, 0.14, 0.10, 0.12, 0.11, 0.08, 0.07, 0.04, 0.03, 0.03, 0.02, 0.01, 0.01])
SEGMENTS = (["consumer", "smb", "enterprise"], [0.80, 0.15, 0.05])
STATUSES = (["completed", "shipped", "pending", "cancelled", "refunded"],
            [0.70, 0.10, 0.05, 0.10, 0.05])
QUANTITY_P = [0.55, 0.20, 0.12, 0.08, 0.05]  # most lines are a single item
CATALOG_SIZE = 5_000  # SKU-10000 .. SKU-14999, one fixed price each

# Preference values are pre-rendered JSON, so an event's value is a table lookup and the
# JSON line can be assembled with vectorised string joins.
INTERESTS = ["books", "sports", "travel", "music", "fashion", "home", "garden", "tech", "food",
             "kids"]
INTEREST_SIZE_P = [0.40, 0.30, 0.20, 0.10]  # 1..4 interests, fewer is more common
PREFERENCES = {  # field -> (probability of the field, {json value: probability})
    "channel": (0.30, {'"email"': 0.50, '"sms"': 0.15, '"push"': 0.25, '"none"': 0.10}),
    "language": (0.20, {'"en"': 0.35, '"de"': 0.25, '"fr"': 0.15, '"es"': 0.10, '"nl"': 0.10,
                        '"it"': 0.05}),
    "marketing_opt_in": (0.30, {"true": 0.60, "false": 0.40}),
    "interests": (0.20, {json.dumps(list(combo)): INTEREST_SIZE_P[k - 1] / comb(len(INTERESTS), k)
                         for k in range(1, 5) for combo in itertools.combinations(INTERESTS, k)}),
}
FIELD_NAMES = pa.array(list(PREFERENCES))
VALUE_JSON = pa.array([value for _, values in PREFERENCES.values() for value in values])

CRM_SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("first_name", pa.string()), ("last_name", pa.string()),
    ("email", pa.string()), ("country", pa.string()), ("segment", pa.string()),
    ("signup_date", pa.date32()), ("updated_at", pa.timestamp("s")),  # "s": CSV gets no fraction
])


def generate_landing(
    root: Path,
    customers: int,
    seed: int = 7,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Writes the landing files under root, replacing earlier ones; returns row counts per dataset:
    {"crm_export": n, "orders": n, "order_lines": n, "preference_events": n}."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    root = Path(root)
    crm_path = root / "customer" / "crm_export.csv"
    orders_dir, lines_dir = root / "orders" / "orders", root / "orders" / "order_lines"
    events_dir = root / "preferences" / "events"
    crm_path.parent.mkdir(parents=True, exist_ok=True)
    # Readers glob the whole directory, so an old part would leak into a smaller re-seed.
    for directory, pattern in ((orders_dir, "*.parquet"), (lines_dir, "*.parquet"),
                               (events_dir, "*.jsonl")):
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob(pattern):
            old.unlink()

    catalog_cents = _catalog(np.random.default_rng([seed, 0, 4]))  # shared by all chunks
    counts = dict.fromkeys(["crm_export", "orders", "order_lines", "preference_events"], 0)
    with pacsv.CSVWriter(crm_path, CRM_SCHEMA) as crm_writer:
        for chunk, first in enumerate(range(0, customers, CHUNK)):
            numbers = np.arange(first + 1, min(first + CHUNK, customers) + 1)
            crm_rng, orders_rng, lines_rng, events_rng = (
                np.random.default_rng([seed, chunk, stream]) for stream in range(4))
            crm, signup = _crm(crm_rng, numbers)
            # Order and event numbers continue from the earlier chunks, so ids stay unique.
            orders = _orders(orders_rng, numbers, signup, customers, counts["orders"] + 1)
            lines = _order_lines(lines_rng, orders["order_id"].combine_chunks(), catalog_cents)
            events = _events(events_rng, numbers, signup, counts["preference_events"] + 1)

            part = f"part-{chunk:05d}"
            crm_writer.write_table(crm)
            pq.write_table(orders, orders_dir / f"{part}.parquet")
            pq.write_table(lines, lines_dir / f"{part}.parquet")
            _write_lines(events, events_dir / f"{part}.jsonl")
            for dataset, table in (("crm_export", crm), ("orders", orders),
                                   ("order_lines", lines), ("preference_events", events)):
                counts[dataset] += len(table)
                if progress:
                    progress(dataset, int(numbers[-1]), customers)
    return counts


def _crm(rng: np.random.Generator, numbers: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """One chunk of the CRM export (re-exported customers included, shuffled) and each
    customer's signup second."""
    n = len(numbers)
    signup = FIRST_SIGNUP + rng.integers(0, SIGNUP_DAYS, n) * DAY
    updated = _between(rng, signup, CUTOFF - DAY)
    first, last = rng.integers(0, len(FIRST_NAMES), n), rng.integers(0, len(LAST_NAMES), n)
    domain = rng.integers(0, len(EMAIL_DOMAINS), n)
    segment = _choice(rng, SEGMENTS[1], n)
    country = pa.array(_choice(rng, COUNTRIES[1], n), mask=rng.random(n) < 0.05)

    # ~3% were updated again and appear a second time with a later updated_at and a
    # changed segment (bit 1) and/or email domain (bit 2).
    dup = np.flatnonzero(rng.random(n) < 0.03)
    change = rng.integers(1, 4, len(dup))
    segment = np.concatenate([segment, np.where(
        change & 1, (segment[dup] + rng.integers(1, 3, len(dup))) % 3, segment[dup])])
    domain = np.concatenate([domain, np.where(
        change & 2, (domain[dup] + 1) % len(EMAIL_DOMAINS), domain[dup])])
    updated = np.concatenate([updated, _between(rng, updated[dup] + 1, CUTOFF)])
    # Shuffle so that a customer's two rows are not next to each other.
    perm = rng.permutation(n + len(dup))
    row = np.concatenate([np.arange(n), dup])[perm]
    segment, domain, updated = segment[perm], domain[perm], updated[perm]

    first_name = pa.array(FIRST_NAMES).take(first[row])
    last_name = pa.array(LAST_NAMES).take(last[row])
    email = pc.binary_join_element_wise(
        pc.utf8_lower(first_name), ".", pc.utf8_lower(last_name), ".",
        pc.cast(pa.array(numbers[row]), pa.string()), "@", pa.array(EMAIL_DOMAINS).take(domain), "")
    # Emails are typed in by hand: ~10% have odd casing and/or surrounding spaces.
    email = pc.if_else(rng.random(len(row)) < 0.07, pc.utf8_title(email), email)
    email = pc.if_else(rng.random(len(row)) < 0.05,
                       pc.binary_join_element_wise(" ", email, " ", ""), email)
    table = pa.table({
        "customer_id": _ids("C", numbers[row], 8),
        "first_name": first_name,
        "last_name": last_name,
        "email": email,
        "country": pa.array(COUNTRIES[0]).take(country.take(row)),
        "segment": pa.array(SEGMENTS[0]).take(segment),
        "signup_date": pa.array(signup[row].astype("datetime64[s]").astype("datetime64[D]")),
        "updated_at": pa.array(updated.astype("datetime64[s]")),
    }, schema=CRM_SCHEMA)
    return table, signup


def _orders(rng: np.random.Generator, numbers: np.ndarray, signup: np.ndarray,
            customers: int, first_no: int) -> pa.Table:
    n = len(numbers)
    # ~5% never order; the rest place 1 + gamma-Poisson orders (a long tail of heavy
    # buyers), about 10 per customer overall.
    per_customer = np.where(rng.random(n) < 0.05, 0, 1 + rng.poisson(rng.gamma(2.0, 4.75, n)))
    owner = np.repeat(np.arange(n), per_customer)
    ts = _between(rng, signup[owner], CUTOFF)
    customer_no = numbers[owner]
    # ~0.1% of orders reference customers that are missing from the CRM export.
    orphan = np.flatnonzero(rng.random(len(owner)) < 0.001)
    customer_no[orphan] = customers + 1 + rng.integers(0, 10_000, len(orphan))
    by_time = np.argsort(ts, kind="stable")  # the OLTP numbers orders in time order
    return pa.table({
        "order_id": _ids("O", first_no + np.arange(len(owner)), 10),
        "customer_id": _ids("C", customer_no[by_time], 8),
        "order_ts": pa.array((ts[by_time] * 1_000_000).astype("datetime64[us]")),
        "status": pa.array(STATUSES[0]).take(_choice(rng, STATUSES[1], len(owner))),
    })


def _order_lines(rng: np.random.Generator, order_ids: pa.Array,
                 catalog_cents: np.ndarray) -> pa.Table:
    per_order = 1 + rng.binomial(3, 1 / 3, len(order_ids))  # 1..4 lines, 2 on average
    owner = np.repeat(np.arange(len(order_ids)), per_order)
    line_no = np.arange(len(owner)) - np.repeat(np.cumsum(per_order) - per_order, per_order) + 1
    sku = rng.integers(0, CATALOG_SIZE, len(owner))
    return pa.table({
        "order_id": order_ids.take(owner),
        "line_no": pa.array(line_no.astype(np.int32)),
        "sku": _ids("SKU-", 10_000 + sku, 5),
        "quantity": pa.array((1 + _choice(rng, QUANTITY_P, len(owner))).astype(np.int32)),
        "unit_price": _decimal(catalog_cents[sku]),
    })


def _events(rng: np.random.Generator, numbers: np.ndarray, signup: np.ndarray,
            first_no: int) -> pa.StringArray:
    """One chunk of preference events, as JSON lines in arrival order."""
    n = len(numbers)
    # ~90% of customers have changed a preference, 1 to 8 times.
    per_customer = np.where(rng.random(n) < 0.9, rng.integers(1, 9, n), 0)
    owner = np.repeat(np.arange(n), per_customer)
    ts = _between(rng, signup[owner], CUTOFF)
    by_time = np.argsort(ts, kind="stable")  # event ids are handed out at emission
    owner, ts = owner[by_time], ts[by_time]
    event_no = first_no + np.arange(len(owner))
    field = _choice(rng, [p for p, _ in PREFERENCES.values()], len(owner))
    value = np.empty(len(owner), np.int64)  # index into VALUE_JSON
    offset = 0
    for f, (_, values) in enumerate(PREFERENCES.values()):
        rows = np.flatnonzero(field == f)
        value[rows] = offset + _choice(rng, list(values.values()), len(rows))
        offset += len(values)
    # Events reach the landing zone after a random delivery delay, hence out of order.
    arrival = np.argsort(ts + rng.exponential(3 * DAY, len(owner)), kind="stable")
    owner, ts, event_no, field, value = (a[arrival] for a in (owner, ts, event_no, field, value))
    return pc.binary_join_element_wise(
        '{"event_id":"', _ids("E", event_no, 12),
        '","customer_id":"', _ids("C", numbers[owner], 8),
        '","event_ts":"', pc.cast(pa.array(ts.astype("datetime64[s]")), pa.string()),
        '","field":"', FIELD_NAMES.take(field),
        '","value":', VALUE_JSON.take(value), "}\n", "")


def _catalog(rng: np.random.Generator) -> np.ndarray:
    """List price in cents per SKU, log-uniform in 1.00..500.00: many cheap items, few dear ones."""
    return np.rint(np.exp(rng.uniform(np.log(100), np.log(50_000), CATALOG_SIZE))).astype(np.int64)


def _between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray | int) -> np.ndarray:
    """Uniform random epoch seconds in [low, high)."""
    return low + (rng.random(len(low)) * (high - low)).astype(np.int64)


def _choice(rng: np.random.Generator, p: list[float], size: int) -> np.ndarray:
    return rng.choice(len(p), size, p=p)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded number, e.g. C00000042."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _decimal(cents: np.ndarray) -> pa.Array:
    """decimal128(10,2) built straight from integer cents, so no float rounding creeps in."""
    # decimal128 stores the unscaled value as a little-endian 128-bit integer; cents are
    # positive, so the high 64 bits are zero.
    raw = np.zeros((len(cents), 2), np.int64)
    raw[:, 0] = cents
    return pa.Array.from_buffers(pa.decimal128(10, 2), len(cents), [None, pa.py_buffer(raw)])


def _write_lines(lines: pa.StringArray, path: Path) -> None:
    # Every line ends in a newline, so the array's character data is the file content.
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset:][:len(lines) + 1]
    data = lines.buffers()[2]
    path.write_bytes(memoryview(data)[offsets[0]:offsets[-1]] if data else b"")

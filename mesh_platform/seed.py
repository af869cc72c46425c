"""Deterministic generator of realistic landing data for the three source contracts.

Customers are produced in fixed-size chunks with vectorised numpy code, and each chunk is
written out before the next one is built, so memory stays flat and run time grows linearly:
nothing but the row counts is carried from one chunk to the next (each chunk's tables are
dropped as soon as they are written), so peak memory is one chunk's worth whatever the number
of customers. Every (chunk, dataset) pair draws from its own random stream, so the files
depend only on (customers, seed) and are byte-identical between runs.

What is atomic. A landing folder holds four datasets: `customer/crm_export.csv` (a file) and
`orders/orders`, `orders/order_lines`, `preferences/events` (folders of parts). A seed
- takes an exclusive lock (`flock` on `<landing>/.seed.lock`) for its whole run, so two seeds
  never write into one landing folder at once (the second fails with SeedLockedError);
- removes what killed seeds left behind (`<landing>/.seed-*` folders: with the lock held, none
  of them is in use);
- generates every dataset into its own staging folder `<landing>/.seed-<uuid>/`, on the same
  filesystem as the landing data and outside every dataset folder, so readers that glob
  `orders/orders/*.parquet` never see a staging file;
- then installs the datasets one after another (within a millisecond), each replaced whole
  with Linux `renameat2(RENAME_EXCHANGE)`, which swaps the new file or folder and the old one
  in one step (the old one, now in the staging folder, is removed afterwards). Where the
  kernel or filesystem cannot exchange (ENOSYS, EINVAL), the CSV is renamed over the old one
  (`os.replace`, atomic too) and an old folder is renamed aside before the new one is renamed
  in: between those two renames (microseconds) the folder is missing, never mixed.
  SIGINT, SIGTERM and SIGHUP received during this last step (install, then removal of the
  replaced data: 0.65 s for 2.6 GB of them here) take effect when it ends, so only SIGKILL
  can cut it short.
So a seed that is killed (by any signal, SIGKILL included) while generating, which is nearly
all of its run time, leaves every previous dataset as it was; only a SIGKILL (or a crash)
during the install (under a millisecond) can leave some datasets new and others old, each of
them whole. A seed removes its own staging folder on an error or Ctrl-C; one that was killed
leaves it to the next seed.
A reader never sees a partial file, nor a folder listing with a mix of old and new parts; a
reader that lists a folder and opens its parts later can still meet the next seed's parts.
Files are not fsynced: this guards against killed processes, not against power loss.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from math import comb
from numbers import Integral
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

CHUNK = 100_000  # customers per chunk: one Parquet/JSONL part per chunk

# Each dataset's place under the landing root: a file, or a folder of one part per chunk.
CRM_FILE = "customer/crm_export.csv"
PART_FOLDERS = {"orders": "orders/orders", "order_lines": "orders/order_lines",
                "preference_events": "preferences/events"}
LOCK_FILE = ".seed.lock"
STAGING_PREFIX = ".seed-"  # <landing>/.seed-<uuid>/: a seed's work folder
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # while installing

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


class SeedLockedError(RuntimeError):
    """Another seed holds the landing folder's lock."""


def generate_landing(
    root: Path,
    customers: int,
    seed: int = 7,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Writes the landing files under root, replacing earlier ones dataset by dataset, each
    atomically (see the module docstring); returns row counts per dataset:
    {"crm_export": n, "orders": n, "order_lines": n, "preference_events": n}.

    Raises ValueError for a customer count below 1 or a seed that is not a non-negative
    integer, and SeedLockedError while another seed is writing into root."""
    check_arguments(customers, seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        for leftover in root.glob(f"{STAGING_PREFIX}*"):  # from killed seeds: none is in use
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
        staging = root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        try:
            counts = _generate(staging / "new", int(customers), int(seed), progress)
            with _signals_held():
                _install(staging, root)
                shutil.rmtree(staging, ignore_errors=True)  # now holds the replaced datasets
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # a partial seed, after an error or Ctrl-C
    return counts


def check_arguments(customers: object, seed: object) -> None:
    """ValueError unless customers is an integer >= 1 and seed an integer >= 0. The messages
    name the options of `mesh seed`, which prints them as they are."""
    _check_int("--customers", customers, minimum=1)
    _check_int("--seed", seed, minimum=0)


def _check_int(name: str, value: object, minimum: int) -> None:
    what = "a non-negative integer" if minimum == 0 else f"an integer of at least {minimum}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {'at least 1' if minimum == 1 else what}, got {value}")


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Holds an exclusive flock on root/.seed.lock; the kernel releases it when the process
    dies, however it dies, so a killed seed never blocks the next one."""
    with open(root / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SeedLockedError(f"another seed is writing into {root} (it holds {lock.name})") from None
        yield


def _generate(out: Path, customers: int, seed: int,
              progress: Callable[[str, int, int], None] | None) -> dict[str, int]:
    """Writes all four datasets under out (a fresh folder), chunk by chunk."""
    crm_path = out / CRM_FILE
    orders_dir, lines_dir, events_dir = (out / PART_FOLDERS[name] for name in PART_FOLDERS)
    for directory in (crm_path.parent, orders_dir, lines_dir, events_dir):
        directory.mkdir(parents=True)

    catalog_cents = _catalog(np.random.default_rng([seed, 0, 4]))  # shared by all chunks
    counts = dict.fromkeys(["crm_export", "orders", "order_lines", "preference_events"], 0)
    with pacsv.CSVWriter(crm_path, CRM_SCHEMA) as crm_writer:
        for chunk, first in enumerate(range(0, customers, CHUNK)):
            numbers = np.arange(first + 1, min(first + CHUNK, customers) + 1)
            crm_rng, orders_rng, lines_rng, events_rng = (
                np.random.default_rng([seed, chunk, stream]) for stream in range(4))
            part = f"part-{chunk:05d}"
            # Each table is written and dropped before the next is built (every dataset has
            # its own random stream, so the order of building does not change the data).
            crm, signup = _crm(crm_rng, numbers)
            crm_writer.write_table(crm)
            rows = {"crm_export": len(crm)}
            del crm
            # Order and event numbers continue from the earlier chunks, so ids stay unique.
            orders = _orders(orders_rng, numbers, signup, customers, counts["orders"] + 1)
            pq.write_table(orders, orders_dir / f"{part}.parquet")
            rows["orders"], order_ids = len(orders), orders["order_id"].combine_chunks()
            del orders
            lines = _order_lines(lines_rng, order_ids, catalog_cents)
            pq.write_table(lines, lines_dir / f"{part}.parquet")
            rows["order_lines"] = len(lines)
            del lines, order_ids
            events = _events(events_rng, numbers, signup, counts["preference_events"] + 1)
            _write_lines(events, events_dir / f"{part}.jsonl")
            rows["preference_events"] = len(events)
            del events, signup
            for dataset, n in rows.items():
                counts[dataset] += n
                if progress:
                    progress(dataset, int(numbers[-1]), customers)
    return counts


def _install(staging: Path, root: Path) -> None:
    """Moves each dataset from staging/new into root, replacing the old one whole; the
    replaced ones end up under staging. Everything that can be done beforehand is, so that
    the renames follow one another within a millisecond. The CSV is exchanged too, rather
    than renamed over: freeing an overwritten file's blocks takes the filesystem milliseconds
    inside the rename, and they would widen the window in which a SIGKILL mixes old and new."""
    for dataset in (CRM_FILE, *PART_FOLDERS.values()):
        (root / dataset).parent.mkdir(parents=True, exist_ok=True)
    _renameat2()  # loaded now, not between two renames
    for dataset in (CRM_FILE, *PART_FOLDERS.values()):
        replace_whole(staging / "new" / dataset, root / dataset, staging / "old" / dataset)


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP received inside the block take effect when it ends, so that
    only SIGKILL can stop it half-way. Blocking the signals (pthread_sigmask) would not do:
    it blocks them in this thread only, and the kernel hands a process's signal to any thread
    that does not block it (numpy and pyarrow start thread pools). So Python handlers note
    the signals, and the block's end restores the previous handlers and raises each noted
    signal again. Only the main thread can set handlers: elsewhere nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = {}
    for sig in HELD_SIGNALS:
        handler = signal.getsignal(sig)
        if handler is not None:  # None: set outside Python, and could not be put back
            previous[sig] = signal.signal(sig, lambda signum, _frame: noted.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(noted):
            signal.raise_signal(sig)


def replace_whole(new: Path, target: Path, aside: Path, exchange: bool = True) -> None:
    """Puts `new` (a file or a folder) at `target`. An existing target is swapped with `new`
    in one renameat2(RENAME_EXCHANGE), after which the old content is at `new`. Where that is
    unavailable, or exchange=False, a file is renamed over the target (atomic as well) and a
    folder's target is renamed to `aside` first: the folder is then missing until the next
    rename, microseconds later, but never mixed. All paths must be on one filesystem."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(target):
        os.rename(new, target)
    elif exchange and _exchange(new, target):
        pass
    elif not new.is_dir():
        os.replace(new, target)
    else:
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.rename(target, aside)
        os.rename(new, target)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 1 << 1  # linux/fs.h


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's renameat2 (2.28+), or None where there is none (not Linux, older glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths; False if the kernel or filesystem cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


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

"""The governance audit trail: an append-only, hash-chained log of grants, reads, denials,
publishes and deletions (DESIGN.md, decision 7).

Locally it is one JSON-lines file, `<home>/audit/log.jsonl`, one entry a line, each line the
canonical JSON of the entry (`json.dumps(..., sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`). An entry's `hash` is the sha256 of the canonical JSON of every other
field, `prev` included, so each entry vouches for the one before it; `<home>/audit/head`
(replaced atomically) records the last entry's `seq` and `hash`, so that cutting entries off
the end is detected too.

Entries record events, never data: a reader, a snapshot id, a reason, a file name; not rows
or values of a product. Callers pass ids as strings (Iceberg snapshot ids exceed 2**53, where
JSON readers in other languages lose digits); integers beyond 2**53-1 are refused, and an
entry larger than MAX_ENTRY_BYTES is refused as a sign that data is being logged.

Appending. Any number of processes (code locations, the CLI) and threads append at once. Each
append holds an exclusive `flock` on `<home>/audit/lock` while it reads the file's tail (never
the whole file), checks the tail against the head anchor, writes one line, fsyncs it, and only
then replaces the anchor. So seqs are gapless and unique, and an append is acknowledged (it
returns) only once both are durable.
- A crash mid-write leaves a final line without its newline (a torn tail). That entry was never
  acknowledged to its writer, so the next append removes it before writing; it does not vanish
  silently: its bytes are kept in `<home>/audit/torn/` and a warning is logged. Until then,
  verify() reports it as "truncated".
- A crash between the line's fsync and the anchor's replacement leaves the anchor one entry
  behind, on the entry the last one chains to. That state is consistent (verify() is clean)
  and the next append moves the anchor on.
- Anything else that does not fit (the anchor beyond the last entry, a last line that is not
  an entry, a missing anchor under more than one entry) makes append() raise AuditLogError
  rather than write: appending would move the anchor and erase the evidence of a truncation.

Verifying. verify() reads the whole file once, under a shared lock (so it never sees an append
half done), and reports each problem once, by these rules, in this order:
1. "unreadable": a complete line that is not an entry (not JSON, or fields missing or of the
   wrong type); line 0 if the head anchor is unreadable, or missing while the log holds two or
   more lines. "truncated": a final line without its newline (a torn write).
2. "edited": an entry whose hash does not match its content (edited, hash left alone).
3. The chain is then walked backwards from the anchor, following each entry's `prev` to the
   entry with that hash (of several, the nearest line before it in the file):
   The walk starts at the entry the anchor records, or at the entry after it if that is the
   last line and chains to it (a crash left the anchor one behind), or, with no anchor, at the
   last entry.
   - "truncated" (line 0): the anchor records a seq beyond the last entry: the tail was cut
     (unless unreadable lines after the last entry account for the missing seqs).
   - "edited": an entry whose hash differs from the one its successor's `prev` (or the anchor)
     records for it, while its seq is the one expected there: edited and its hash recomputed.
     The attacker who rehashes an entry is caught by the next entry, and the edited entry is
     named, not its innocent successor.
   - "deleted": the expected seq(s) are not in the log: the following entry chains to a hash no
     entry has. Reported at the line of that following entry, with the first missing seq;
     unless unreadable lines between the two neighbours account for them (already reported).
4. "inserted": a readable entry the walk never reached: nothing after it (nor the anchor)
   chains to it, whatever its own hash, prev and seq say; e.g. a forged entry with a valid
   hash of its own, a copy of another line, or lines after the entry the anchor records.
5. "reordered": the walk gives the true order of the entries; each entry whose line is not
   its place in that order (its place = the chain's entries' lines, sorted) is reported, so
   two swapped entries give one problem each.
Problems come sorted by line, then seq. Attribution assumes one tampering at a time; several
at once are still detected (something is reported), though perhaps under fewer lines.

What a local, unkeyed chain cannot show: someone who rewrites the file from some entry on AND
rewrites the anchor to match is not detected. For that, the anchor must also live somewhere
the writer cannot rewrite (object-lock storage, another system's log); that is a deployment
concern, not this module's.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ACTIONS = (
    "grant",
    "revoke",
    "read",
    "read_denied",
    "publish",
    "publish_blocked",
    "maintenance_delete",
    "infra_change",
)
KINDS = ("edited", "deleted", "inserted", "reordered", "truncated", "unreadable")
GENESIS = "0" * 64
MAX_SAFE_INT = 2**53 - 1
MAX_ENTRY_BYTES = 1 << 20
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("seq", "ts", "action", "actor", "product", "detail", "prev", "hash")
_TAIL_CHUNK = 8192

log = logging.getLogger(__name__)


class AuditLogError(RuntimeError):
    """The log's tail does not fit its head anchor: appending would hide tampering."""


def canonical(fields: dict) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _digest(fields: dict) -> str:
    return hashlib.sha256(canonical(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    ts: str
    action: str
    actor: str
    product: str | None
    detail: dict
    prev: str
    hash: str

    @property
    def time(self) -> datetime:
        return _parse_ts(self.ts)

    def to_dict(self) -> dict:
        return asdict(self)

    def content(self) -> dict:
        """Every field but the hash: what the hash is computed from."""
        d = self.to_dict()
        del d["hash"]
        return d

    def computed_hash(self) -> str:
        return _digest(self.content())

    def line(self) -> str:
        return canonical(self.to_dict())

    @classmethod
    def from_dict(cls, obj: object) -> Entry:
        """An entry as stored; ValueError saying what is wrong if `obj` is not one."""
        if not isinstance(obj, dict):
            raise ValueError(f"a JSON {type(obj).__name__}, not an object")
        missing = [k for k in _FIELDS if k not in obj]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        extra = sorted(set(obj) - set(_FIELDS))
        if extra:
            raise ValueError(f"unexpected field(s) {', '.join(extra)}")
        seq = obj["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"seq {seq!r} is not a positive integer")
        for key in ("ts", "action", "actor"):
            if not isinstance(obj[key], str):
                raise ValueError(f"{key} is not a string")
        try:
            _parse_ts(obj["ts"])
        except ValueError:
            raise ValueError(f"ts {obj['ts']!r} is not an ISO 8601 UTC timestamp") from None
        if obj["product"] is not None and not isinstance(obj["product"], str):
            raise ValueError("product is neither a string nor null")
        if not isinstance(obj["detail"], dict):
            raise ValueError("detail is not an object")
        for key in ("prev", "hash"):
            if not isinstance(obj[key], str) or not _HEX64.fullmatch(obj[key]):
                raise ValueError(f"{key} is not a sha256 hex digest")
        return cls(**{k: obj[k] for k in _FIELDS})


@dataclass(frozen=True)
class Problem:
    line: int
    seq: int | None
    kind: str
    message: str


def _parse_ts(ts: str) -> datetime:
    return datetime.strptime(ts, TS_FORMAT).replace(tzinfo=timezone.utc)


def _now() -> str:
    return datetime.now(timezone.utc).strftime(TS_FORMAT)


def _checked_detail(detail: dict) -> dict:
    """The detail as it will read back from the log (tuples become lists), or TypeError."""

    def check(value: object, path: str) -> None:
        if value is None or isinstance(value, (str, bool)):
            return
        if isinstance(value, int):
            if abs(value) > MAX_SAFE_INT:
                raise TypeError(
                    f"audit detail {path}={value}: integers beyond 2**53-1 lose digits in JSON "
                    f"readers; pass ids as strings, e.g. {path.split('.')[0]}=str(...)"
                )
            return
        if isinstance(value, float):
            if not math.isfinite(value):
                raise TypeError(f"audit detail {path}={value} is not representable in JSON")
            return
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise TypeError(f"audit detail {path} has a non-string key {k!r}")
                check(v, f"{path}.{k}")
            return
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                check(v, f"{path}[{i}]")
            return
        raise TypeError(
            f"audit detail {path} is a {type(value).__name__}, which is not JSON-serialisable: "
            "pass str, int, float, bool, None, or lists and dicts of them"
        )

    for key, value in detail.items():
        check(value, key)
    return json.loads(canonical(detail))


class AuditLog:
    """The audit log of one mesh home."""

    def __init__(self, home: Path | str):
        self.home = Path(home)
        self.dir = self.home / "audit"
        self.path = self.dir / "log.jsonl"
        self.head_path = self.dir / "head"
        self.lock_path = self.dir / "lock"
        self.torn_dir = self.dir / "torn"

    # -- writing -------------------------------------------------------------------------

    def append(self, action: str, actor: str, product: str | None = None, **detail) -> Entry:
        """Record one event and return its entry, once it and the head anchor are on disk."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; valid actions: {', '.join(ACTIONS)}")
        if not isinstance(actor, str) or not actor:
            raise ValueError(f"actor must be a non-empty string, got {actor!r}")
        if product is not None and (
            not isinstance(product, str) or product.count("/") != 1 or "" in product.split("/")
        ):
            raise ValueError(f"product must be 'domain/name' or None, got {product!r}")
        detail = _checked_detail(detail)
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked(exclusive=True):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                size, last_line, torn_at = _read_tail(fd)
                last = self._tail_entry(last_line)
                self._check_tail(last, self._read_head())
                if torn_at < size:
                    self._remove_torn_tail(fd, torn_at, size, last)
                fields = {
                    "seq": last.seq + 1 if last else 1,
                    "ts": _now(),
                    "action": action,
                    "actor": actor,
                    "product": product,
                    "detail": detail,
                    "prev": last.hash if last else GENESIS,
                }
                entry = Entry(**fields, hash=_digest(fields))
                data = (entry.line() + "\n").encode("utf-8")
                if len(data) > MAX_ENTRY_BYTES:
                    raise ValueError(
                        f"audit entry of {len(data):,} bytes (limit {MAX_ENTRY_BYTES:,}): entries "
                        "record events, not data; log ids and names, not rows"
                    )
                os.lseek(fd, 0, os.SEEK_END)
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_head(entry)
        return entry

    def _tail_entry(self, line: bytes | None) -> Entry | None:
        if line is None:
            return None
        try:
            return Entry.from_dict(json.loads(line))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise AuditLogError(
                f"the last line of {self.path} is not an audit entry ({exc}); "
                "run verify() (mesh audit --verify) before appending"
            ) from None

    def _check_tail(self, last: Entry | None, head: tuple[int, str] | None) -> None:
        """Refuse to append where doing so would move the anchor past evidence of tampering."""
        if last is None:
            if head is not None and head[0] > 0:
                raise AuditLogError(
                    f"the head anchor records seq {head[0]} but {self.path} holds no entry: "
                    "the log was truncated; run verify() (mesh audit --verify)"
                )
            return
        if head is None:
            if last.seq > 1:
                raise AuditLogError(
                    f"the head anchor {self.head_path} is missing under {last.seq} entries; "
                    "run verify() (mesh audit --verify)"
                )
            return
        if head == (last.seq, last.hash) or head == (last.seq - 1, last.prev):
            return  # in step, or one behind after a crash between the line's fsync and the anchor
        raise AuditLogError(
            f"the last entry (seq {last.seq}) does not match the head anchor (seq {head[0]}): "
            "the log was truncated or rewritten; run verify() (mesh audit --verify)"
        )

    def _remove_torn_tail(self, fd: int, torn_at: int, size: int, last: Entry | None) -> None:
        """Cut a crashed append's partial line, keeping its bytes for whoever investigates."""
        os.lseek(fd, torn_at, os.SEEK_SET)
        torn = os.read(fd, size - torn_at)
        self.torn_dir.mkdir(exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        kept = self.torn_dir / f"after-seq-{last.seq if last else 0}-{stamp}.partial"
        kept.write_bytes(torn)
        os.ftruncate(fd, torn_at)
        os.fsync(fd)
        log.warning(
            "audit log %s: removed a torn final line of %d bytes after seq %s (a crashed, "
            "unacknowledged append); its bytes are kept in %s",
            self.path, len(torn), last.seq if last else 0, kept,
        )

    def _write_head(self, entry: Entry) -> None:
        tmp = self.dir / "head.tmp"  # one writer at a time: the lock is held
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(canonical({"seq": entry.seq, "hash": entry.hash}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.head_path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _read_head(self) -> tuple[int, str] | None:
        """(seq, hash) of the anchor, None if there is none; ValueError if it is unreadable."""
        try:
            text = self.head_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            obj = json.loads(text)
            seq, digest = obj["seq"], obj["hash"]
        except (ValueError, TypeError, KeyError):
            raise AuditLogError(f"the head anchor {self.head_path} is not readable") from None
        if (
            not isinstance(seq, int) or isinstance(seq, bool) or seq < 0
            or not isinstance(digest, str) or not _HEX64.fullmatch(digest)
        ):
            raise AuditLogError(f"the head anchor {self.head_path} is not readable")
        return seq, digest

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool):
        import fcntl

        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # -- reading -------------------------------------------------------------------------

    def entries(
        self,
        *,
        product: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
    ) -> list[Entry]:
        """Readable entries in file order, filtered (`since` inclusive; naive means UTC).
        Lines that are not entries are skipped here: verify() is what reports them."""
        if action is not None and action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; valid actions: {', '.join(ACTIONS)}")
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        out = []
        for _, entry, _ in _parse(self._read_log())[0]:
            if product is not None and entry.product != product:
                continue
            if actor is not None and entry.actor != actor:
                continue
            if action is not None and entry.action != action:
                continue
            if since is not None and entry.time < since:
                continue
            out.append(entry)
        return out

    def _read_log(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""

    def verify(self) -> list[Problem]:
        """Every sign of tampering, by the rules in the module docstring; [] if intact."""
        if not self.dir.is_dir():
            return []
        with self._locked(exclusive=False):
            data = self._read_log()
            try:
                head, head_problem = self._read_head(), None
            except AuditLogError as exc:
                head, head_problem = None, Problem(0, None, "unreadable", f"{exc}.")
        return _Verifier(data, head, head_problem, self.head_path).run()


def _missing(first: int, last: int) -> str:
    return f"entry seq {first} is" if first == last else f"entries seq {first}..{last} are"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_tail(fd: int) -> tuple[int, bytes | None, int]:
    """(file size, last complete line without its newline or None, offset where a torn final
    line begins: the size if there is none). Reads back from the end, not the whole file."""
    size = os.lseek(fd, 0, os.SEEK_END)
    buf, pos = b"", size
    while True:
        nl = buf.rfind(b"\n")
        if nl != -1:
            before = buf.rfind(b"\n", 0, nl)
            if before != -1 or pos == 0:
                return size, buf[before + 1:nl], pos + nl + 1
        elif pos == 0:
            return size, None, 0  # not one complete line
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        os.lseek(fd, pos, os.SEEK_SET)
        chunk = b""
        while len(chunk) < step:
            more = os.read(fd, step - len(chunk))
            if not more:
                raise AuditLogError("the audit log shrank while its tail was read under the lock")
            chunk += more
        buf = chunk + buf


def _parse(data: bytes) -> tuple[list[tuple[int, Entry, bool]], list[tuple[int, int | None, str]], tuple[int, int | None] | None]:
    """(readable (line, entry, hash matches) in file order, unreadable (line, seq, reason),
    the torn final line's (line, seq) or None)."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    readable, unreadable = [], []
    for number, raw in enumerate(lines, start=1):
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            unreadable.append((number, None, f"not JSON: {exc}"))
            continue
        try:
            entry = Entry.from_dict(obj)
        except ValueError as exc:
            seq = obj.get("seq") if isinstance(obj, dict) else None
            unreadable.append((number, seq if isinstance(seq, int) and not isinstance(seq, bool) else None, str(exc)))
            continue
        readable.append((number, entry, entry.computed_hash() == entry.hash))
    torn = None
    if tail:
        seq = None
        with contextlib.suppress(ValueError, AttributeError):
            seq = json.loads(tail).get("seq")
        torn = (len(lines) + 1, seq if isinstance(seq, int) and not isinstance(seq, bool) else None)
    return readable, unreadable, torn


@dataclass
class _Rec:
    line: int
    entry: Entry
    self_ok: bool
    visited: bool = False


@dataclass
class _Verifier:
    """One verify() pass; see the module docstring for the rules it applies."""

    data: bytes
    head: tuple[int, str] | None
    head_problem: Problem | None
    head_path: Path
    problems: list[Problem] = field(default_factory=list)
    edited: dict[int, Problem] = field(default_factory=dict)

    def run(self) -> list[Problem]:
        readable, unreadable, torn = _parse(self.data)
        self.recs = [_Rec(line, entry, ok) for line, entry, ok in readable]
        self.unreadable = unreadable
        if self.head_problem:
            self.problems.append(self.head_problem)
        complete_lines = len(readable) + len(unreadable)
        if self.head is None and self.head_problem is None and complete_lines >= 2:
            self.problems.append(Problem(
                0, None, "unreadable",
                f"The head anchor {self.head_path} is missing although the log holds "
                f"{complete_lines} lines, so a cut-off tail cannot be detected.",
            ))
        for line, seq, reason in unreadable:
            named = f"Line {line}" + (f" (seq {seq})" if seq is not None else "")
            self.problems.append(Problem(line, seq, "unreadable", f"{named} is not an audit entry: {reason}."))
        if torn:
            self.problems.append(Problem(
                torn[0], torn[1], "truncated",
                f"Line {torn[0]} ends without a newline: an append cut short by a crash, never "
                "acknowledged; the next append removes it.",
            ))
        for rec in self.recs:
            if not rec.self_ok:
                self._edited(rec, f"Line {rec.line} (seq {rec.entry.seq}) was edited: its content no longer matches its hash.")

        self.by_hash: dict[str, list[_Rec]] = {}
        self.by_seq: dict[int, list[_Rec]] = {}
        for rec in self.recs:
            self.by_hash.setdefault(rec.entry.hash, []).append(rec)
            self.by_seq.setdefault(rec.entry.seq, []).append(rec)
        self.seqs = sorted(self.by_seq)

        chain = self._walk()
        chain.reverse()
        self._inserted()
        self._reordered(chain)
        problems = self.problems + list(self.edited.values())
        return sorted(problems, key=lambda p: (p.line, p.seq if p.seq is not None else 0, KINDS.index(p.kind)))

    def _edited(self, rec: _Rec, message: str) -> None:
        self.edited.setdefault(rec.line, Problem(rec.line, rec.entry.seq, "edited", message))

    @staticmethod
    def _nearest_before(cands: list[_Rec], line: int) -> _Rec | None:
        """Of the unvisited candidates, the nearest line before `line`, else the first one."""
        free = [r for r in cands if not r.visited]
        before = [r for r in free if r.line < line]
        if before:
            return max(before, key=lambda r: r.line)
        return min(free, key=lambda r: r.line) if free else None

    def _highest_below(self, seq: int, line: int) -> _Rec | None:
        for s in reversed(self.seqs[:bisect.bisect_left(self.seqs, seq)]):
            rec = self._nearest_before(self.by_seq[s], line)
            if rec:
                return rec
        return None

    def _top(self) -> _Rec | None:
        """Where the walk starts: the entry the anchor records (or the one after it, if a crash
        left the anchor one behind), else the last entry."""
        if not self.recs:
            if self.head is not None and self.head[0] > 0:
                self.problems.append(Problem(
                    0, 1, "truncated",
                    f"The log was truncated: the head anchor records seq {self.head[0]} but the log "
                    f"holds no entry, so {_missing(1, self.head[0])} missing.",
                ))
            return None
        end = float("inf")
        max_seq = self.seqs[-1]
        last_of_max = self._nearest_before(self.by_seq[max_seq], end)
        if self.head is None:
            return last_of_max
        head_seq, head_hash = self.head
        if head_seq > max_seq:
            if self._explained(last_of_max.line, float("inf"), max_seq + 1, head_seq):
                return last_of_max  # the last entries were overwritten: reported as unreadable
            self.problems.append(Problem(
                0, max_seq + 1, "truncated",
                f"The log was truncated: the head anchor records seq {head_seq} but the log ends at "
                f"seq {max_seq} (line {last_of_max.line}), so {_missing(max_seq + 1, head_seq)} missing.",
            ))
            return last_of_max
        anchored = self._nearest_before([r for r in self.by_hash.get(head_hash, []) if r.entry.seq == head_seq], end)
        if anchored:
            last = self.recs[-1]
            if last is not anchored and last.entry.seq == head_seq + 1 and last.entry.prev == head_hash:
                return last
            return anchored
        same = self._nearest_before(self.by_seq.get(head_seq, []), end)
        if same:
            self._edited(same, (
                f"Line {same.line} (seq {head_seq}) was edited and its hash recomputed: the head "
                "anchor records a different hash for it."
            ))
            return same
        lower = self._highest_below(head_seq, end)
        self._deleted(lower, None, head_seq)
        return lower

    def _deleted(self, lower: _Rec | None, upper: _Rec | None, last_missing: int) -> None:
        """Report the seqs between `lower` and `upper` (or the anchor's seq) as deleted, unless
        unreadable lines between them account for them."""
        first = lower.entry.seq + 1 if lower else 1
        if last_missing < first:
            return
        if self._explained(lower.line if lower else 0, upper.line if upper else float("inf"), first, last_missing):
            return
        which = _missing(first, last_missing).capitalize()
        if upper:
            self.problems.append(Problem(
                upper.line, first, "deleted",
                f"{which} missing before line {upper.line}: seq {upper.entry.seq} there chains to "
                "a hash that no entry in the log has.",
            ))
        else:
            line = lower.line + 1 if lower else 1
            self.problems.append(Problem(
                line, first, "deleted",
                f"{which} missing after line {line - 1}: the head anchor records seq {last_missing}, "
                "which no entry in the log has.",
            ))

    def _explained(self, a: float, b: float, first: int, last: int) -> bool:
        """Whether unreadable lines between lines a and b can hold every seq first..last."""
        lo, hi = min(a, b), max(a, b)
        count = sum(
            1 for line, seq, _ in self.unreadable
            if lo < line < hi and (seq is None or first <= seq <= last)
        )
        return count >= last - first + 1

    def _walk(self) -> list[_Rec]:
        chain = []
        cur = self._top()
        while cur is not None:
            cur.visited = True
            chain.append(cur)
            entry = cur.entry
            if entry.prev == GENESIS:
                break
            nxt = self._nearest_before(self.by_hash.get(entry.prev, []), cur.line)
            if nxt:
                cur = nxt
                continue
            # The entry before this one is not in the log under the hash this one records.
            cand = self._nearest_before(self.by_seq.get(entry.seq - 1, []), cur.line)
            if cand:
                self._edited(cand, (
                    f"Line {cand.line} (seq {cand.entry.seq}) was edited and its hash recomputed: "
                    f"seq {entry.seq} at line {cur.line} records a different hash for it."
                ))
                cur = cand
                continue
            lower = self._highest_below(entry.seq, cur.line)
            self._deleted(lower, cur, entry.seq - 1)
            cur = lower
        return chain

    def _inserted(self) -> None:
        chained = {r.entry.hash: r for r in self.recs if r.visited}
        for rec in self.recs:
            if rec.visited:
                continue
            named = f"Line {rec.line} (seq {rec.entry.seq}) was inserted"
            copy = chained.get(rec.entry.hash)
            if copy is not None:
                message = f"{named}: it is a copy of line {copy.line}."
            elif self.head is not None and rec.entry.seq > self.head[0]:
                message = f"{named} after the last entry the head anchor records (seq {self.head[0]})."
            else:
                message = f"{named}: no later entry, nor the head anchor, chains to it."
            self.problems.append(Problem(rec.line, rec.entry.seq, "inserted", message))

    def _reordered(self, chain: list[_Rec]) -> None:
        places = sorted(r.line for r in chain)
        for rec, place in zip(chain, places):
            if rec.line != place:
                self.problems.append(Problem(
                    rec.line, rec.entry.seq, "reordered",
                    f"Line {rec.line} holds seq {rec.entry.seq} out of order: by the hash chain it "
                    f"belongs at line {place}.",
                ))

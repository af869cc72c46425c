"""The audit log on disk: the chain, concurrent appends, and every kind of tampering verify()
must name, with its line and seq."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from mesh_platform.audit import ACTIONS, GENESIS, AuditLog, AuditLogError, Entry, Problem, canonical
from mesh_platform.audit_report import entries_json, format_entries, format_problems


def _fill(log: AuditLog, n: int) -> list[Entry]:
    return [
        log.append("read", "federation", "orders/history", reader="federation", snapshot_id=str(2**62 + i))
        for i in range(n)
    ]


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(lines), encoding="utf-8")


def _rehashed(line: str, **changes) -> str:
    """The entry on `line` with `changes` applied and its own hash recomputed, as an attacker would."""
    obj = json.loads(line)
    obj.update(changes)
    del obj["hash"]
    obj["hash"] = hashlib.sha256(canonical(obj).encode()).hexdigest()
    return canonical(obj) + "\n"


def _found(log: AuditLog) -> list[tuple[int, int | None, str]]:
    return [(p.line, p.seq, p.kind) for p in log.verify()]


def test_a_chain_of_entries_verifies_clean(tmp_path):
    log = AuditLog(tmp_path)
    assert log.verify() == []
    written = _fill(log, 25)
    assert [e.seq for e in written] == list(range(1, 26))
    assert written[0].prev == GENESIS
    assert [e.prev for e in written[1:]] == [e.hash for e in written[:-1]]
    assert all(e.hash == e.computed_hash() for e in written)
    assert log.entries() == written
    assert json.loads((tmp_path / "audit" / "head").read_text()) == {"seq": 25, "hash": written[-1].hash}
    assert _lines(log)[0] == canonical(written[0].to_dict()) + "\n"
    assert log.verify() == []
    assert format_problems([]) == "audit log intact: every entry chains to the next and to the head anchor"


def test_an_entry_records_its_fields_and_a_utc_timestamp(tmp_path):
    before = datetime.now(timezone.utc)
    entry = AuditLog(tmp_path).append(
        "publish_blocked", "orders", "orders/history", run_id="r-1", reason="3 null ids", checks=("schema", "ids")
    )
    assert (entry.seq, entry.action, entry.actor, entry.product) == (1, "publish_blocked", "orders", "orders/history")
    assert entry.detail == {"run_id": "r-1", "reason": "3 null ids", "checks": ["schema", "ids"]}
    assert len(entry.ts) == len("2026-11-27T06:09:46.123456Z") and entry.ts.endswith("Z")
    assert before <= entry.time <= datetime.now(timezone.utc)
    assert AuditLog(tmp_path).entries() == [entry]


def _append_many(home: str, worker: int, count: int) -> list[int]:
    log = AuditLog(home)
    return [log.append("read", f"location-{worker}", "orders/history", n=i).seq for i in range(count)]


def test_four_processes_appending_at_once_lose_nothing(tmp_path):
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_append_many, [str(tmp_path)] * 4, range(4), [50] * 4))
    seqs = sorted(s for r in results for s in r)
    assert seqs == list(range(1, 201))
    entries = AuditLog(tmp_path).entries()
    assert [e.seq for e in entries] == list(range(1, 201))
    for worker in range(4):
        mine = [e.detail["n"] for e in entries if e.actor == f"location-{worker}"]
        assert mine == list(range(50))  # each process's own entries in the order it wrote them
    assert AuditLog(tmp_path).verify() == []


def test_threads_appending_at_once_lose_nothing(tmp_path):
    threads = [threading.Thread(target=_append_many, args=(str(tmp_path), w, 25)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.seq for e in AuditLog(tmp_path).entries()] == list(range(1, 101))
    assert AuditLog(tmp_path).verify() == []


def test_an_edited_entry_is_named(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    lines[4] = lines[4].replace('"reader":"federation"', '"reader":"someone_else"')
    _write(log, lines)
    assert log.verify() == [
        Problem(5, 5, "edited", "Line 5 (seq 5) was edited: its content no longer matches its hash.")
    ]


def test_an_edited_entry_with_its_hash_recomputed_is_named_not_its_successor(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    lines[4] = _rehashed(lines[4], actor="customer")
    _write(log, lines)
    assert log.verify() == [
        Problem(
            5, 5, "edited",
            "Line 5 (seq 5) was edited and its hash recomputed: seq 6 at line 6 records a different hash for it.",
        )
    ]


def test_the_last_entry_edited_with_its_hash_recomputed_is_caught_by_the_anchor(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    lines[9] = _rehashed(lines[9], action="grant")
    _write(log, lines)
    assert _found(log) == [(10, 10, "edited")]
    assert "head anchor records a different hash" in log.verify()[0].message


def test_a_deleted_middle_entry_is_named(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    del lines[4]
    _write(log, lines)
    assert log.verify() == [
        Problem(
            5, 5, "deleted",
            "Entry seq 5 is missing before line 5: seq 6 there chains to a hash that no entry in the log has.",
        )
    ]


def test_several_deleted_entries_are_named_as_one_range(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    del lines[3:6]
    _write(log, lines)
    assert _found(log) == [(4, 4, "deleted")]
    assert log.verify()[0].message.startswith("Entries seq 4..6 are missing before line 4")


def test_a_deleted_last_entry_is_caught_by_the_anchor(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    _write(log, _lines(log)[:9])
    assert log.verify() == [
        Problem(
            0, 10, "truncated",
            "The log was truncated: the head anchor records seq 10 but the log ends at seq 9 (line 9), "
            "so entry seq 10 is missing.",
        )
    ]
    with pytest.raises(AuditLogError, match=r"last entry \(seq 9\) does not match the head anchor \(seq 10\)"):
        log.append("read", "federation")
    assert json.loads(log.head_path.read_text())["seq"] == 10  # the evidence stays
    assert len(_lines(log)) == 9


def test_an_emptied_log_is_caught_by_the_anchor(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 3)
    _write(log, [])
    assert _found(log) == [(0, 1, "truncated")]


def test_a_forged_entry_with_a_valid_hash_is_named_as_inserted(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    before = json.loads(lines[3])  # seq 4: the forgery fits after it by seq and prev
    forged = _rehashed(lines[4], seq=5, prev=before["hash"], action="grant", detail={"reader": "mallory"})
    assert Entry.from_dict(json.loads(forged)).computed_hash() == json.loads(forged)["hash"]
    lines.insert(4, forged)
    _write(log, lines)
    assert log.verify() == [
        Problem(5, 5, "inserted", "Line 5 (seq 5) was inserted: no later entry, nor the head anchor, chains to it.")
    ]


def test_a_copied_line_is_named_as_inserted(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    lines.insert(7, lines[1])
    _write(log, lines)
    assert log.verify() == [Problem(8, 2, "inserted", "Line 8 (seq 2) was inserted: it is a copy of line 2.")]


def test_an_entry_appended_behind_the_platforms_back_is_named_as_inserted(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 5)
    lines = _lines(log)
    lines.append(_rehashed(lines[4], seq=7, prev=GENESIS))
    lines.append(_rehashed(lines[4], seq=8, prev=GENESIS))
    _write(log, lines)
    assert _found(log) == [(6, 7, "inserted"), (7, 8, "inserted")]
    assert log.verify()[0].message == "Line 6 (seq 7) was inserted after the last entry the head anchor records (seq 5)."


def test_two_swapped_entries_are_named_as_reordered(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    lines[3], lines[4] = lines[4], lines[3]
    _write(log, lines)
    assert log.verify() == [
        Problem(4, 5, "reordered", "Line 4 holds seq 5 out of order: by the hash chain it belongs at line 5."),
        Problem(5, 4, "reordered", "Line 5 holds seq 4 out of order: by the hash chain it belongs at line 4."),
    ]


def test_two_distant_swapped_entries_are_named_as_reordered(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    lines[1], lines[8] = lines[8], lines[1]
    _write(log, lines)
    assert _found(log) == [(2, 9, "reordered"), (9, 2, "reordered")]


def test_a_garbage_line_is_unreadable(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    lines.insert(3, "this is not json\n")
    _write(log, lines)
    problems = log.verify()
    assert _found(log) == [(4, None, "unreadable")]
    assert problems[0].message.startswith("Line 4 is not an audit entry: not JSON")


def test_an_entry_overwritten_with_garbage_is_unreadable_not_also_deleted(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    lines = _lines(log)
    lines[6] = '{"seq": 7, "note": "gone"}\n'
    _write(log, lines)
    problems = log.verify()
    assert _found(log) == [(7, 7, "unreadable")]
    assert problems[0].message == (
        "Line 7 (seq 7) is not an audit entry: missing field(s) ts, action, actor, product, detail, prev, hash."
    )


def test_a_missing_or_unreadable_anchor_is_reported(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 3)
    log.head_path.write_text("garbage")
    assert _found(log) == [(0, None, "unreadable")]
    with pytest.raises(AuditLogError, match="head anchor .* is not readable"):
        log.append("read", "federation")
    log.head_path.unlink()
    assert log.verify() == [
        Problem(
            0, None, "unreadable",
            f"The head anchor {log.head_path} is missing although the log holds 3 lines, "
            "so a cut-off tail cannot be detected.",
        )
    ]


def test_a_torn_last_line_is_reported_then_removed_by_the_next_append(tmp_path, caplog):
    log = AuditLog(tmp_path)
    _fill(log, 10)
    torn = '{"action":"read","actor":"feder'
    with open(log.path, "a", encoding="utf-8") as f:
        f.write(torn)  # a crash mid-write: no newline, never acknowledged, the anchor untouched
    assert log.verify() == [
        Problem(
            11, None, "truncated",
            "Line 11 ends without a newline: an append cut short by a crash, never acknowledged; "
            "the next append removes it.",
        )
    ]
    entry = log.append("grant", "platform", "orders/history", reader="federation")
    assert (entry.seq, entry.prev) == (11, log.entries()[9].hash)
    assert log.verify() == []
    assert len(_lines(log)) == 11
    kept = list((tmp_path / "audit" / "torn").iterdir())
    assert [p.read_text() for p in kept] == [torn]
    assert kept[0].name.startswith("after-seq-10-")
    assert "removed a torn final line of 31 bytes after seq 10" in caplog.text


def test_a_crash_before_the_anchor_moved_is_consistent_and_the_next_append_catches_up(tmp_path):
    log = AuditLog(tmp_path)
    written = _fill(log, 5)
    log.head_path.write_text(json.dumps({"seq": 4, "hash": written[3].hash}))  # anchor one behind
    assert log.verify() == []
    entry = log.append("read", "federation")
    assert entry.seq == 6
    assert json.loads(log.head_path.read_text()) == {"seq": 6, "hash": entry.hash}
    assert log.verify() == []


def test_append_reads_only_the_tail(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 5)
    lines = _lines(log)
    lines[0] = "x" * 100_000 + "\n"  # a broken first line append never looks at
    _write(log, lines)
    assert log.append("read", "federation").seq == 6
    assert _found(log) == [(1, None, "unreadable")]


def test_entries_filter_by_product_actor_action_and_time(tmp_path):
    log = AuditLog(tmp_path)
    g = log.append("grant", "platform", "orders/history", reader="federation")
    r = log.append("read", "federation", "orders/history", snapshot_id="123")
    d = log.append("read_denied", "preferences", "customer/profiles", reason="no grant")
    p = log.append("publish", "customer", "customer/profiles", run_id="r1")
    assert log.entries(product="orders/history") == [g, r]
    assert log.entries(actor="federation") == [r]
    assert log.entries(action="read_denied") == [d]
    assert log.entries(product="customer/profiles", action="publish") == [p]
    assert log.entries(since=r.time) == [r, d, p]
    assert log.entries(since=r.time.replace(tzinfo=None)) == [r, d, p]  # naive means UTC
    assert log.entries(since=p.time + timedelta(microseconds=1)) == []
    with pytest.raises(ValueError, match="unknown audit action 'reads'"):
        log.entries(action="reads")


def test_entries_json_round_trips(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 3)
    log.append("maintenance_delete", "platform", "orders/history", files=["a.parquet", "b.parquet"])
    text = entries_json(log.entries())
    assert [Entry.from_dict(d) for d in json.loads(text)] == log.entries()
    assert json.loads(text)[3]["detail"] == {"files": ["a.parquet", "b.parquet"]}


def test_format_entries_is_a_table(tmp_path):
    log = AuditLog(tmp_path)
    a = log.append("grant", "platform", "orders/history", reader="federation")
    b = log.append("infra_change", "platform", None, reason="no owner", n=3)
    table = format_entries([a, b]).splitlines()
    assert table[0].split() == ["seq", "time", "(UTC)", "action", "actor", "product", "detail"]
    assert table[1].split()[3:] == ["grant", "platform", "orders/history", "reader=federation"]
    assert table[2].split()[3:] == ["infra_change", "platform", "-", "n=3", 'reason="no', 'owner"']
    assert table[1].split()[1:3] == [a.ts[:10], a.ts[11:19]]
    assert format_entries([]) == "(no audit entries)"


def test_format_problems_lists_each(tmp_path):
    text = format_problems([
        Problem(0, 10, "truncated", "The log was truncated."),
        Problem(5, 5, "edited", "Line 5 (seq 5) was edited."),
    ])
    assert text == (
        "audit log tampered with: 2 problems\n"
        "  truncated  The log was truncated.\n"
        "  edited     Line 5 (seq 5) was edited."
    )


def test_unknown_actions_and_unserialisable_details_are_refused(tmp_path):
    log = AuditLog(tmp_path)
    with pytest.raises(ValueError, match="unknown audit action 'delete'; valid actions: " + ", ".join(ACTIONS)):
        log.append("delete", "platform")
    with pytest.raises(TypeError, match=r"audit detail snapshot_id=9223372036854775807: .* pass ids as strings"):
        log.append("read", "federation", "orders/history", snapshot_id=2**63 - 1)
    with pytest.raises(TypeError, match="audit detail when is a datetime, which is not JSON-serialisable"):
        log.append("read", "federation", when=datetime.now(timezone.utc))
    with pytest.raises(TypeError, match=r"audit detail x=nan is not representable in JSON"):
        log.append("read", "federation", x=float("nan"))
    with pytest.raises(ValueError, match="product must be 'domain/name' or None, got 'history'"):
        log.append("read", "federation", "history")
    with pytest.raises(ValueError, match="entries record events, not data"):
        log.append("read", "federation", rows=["x" * 1000] * 2000)
    assert log.entries() == []
    assert not log.path.exists() or log.path.read_bytes() == b""


def test_the_last_entry_overwritten_with_garbage_is_unreadable_not_also_truncated(tmp_path):
    log = AuditLog(tmp_path)
    _fill(log, 5)
    lines = _lines(log)
    lines[4] = "junk\n"
    _write(log, lines)
    assert _found(log) == [(5, None, "unreadable")]


@pytest.mark.parametrize("position", range(6))
def test_each_single_tampering_is_named_at_every_position(tmp_path, position):
    """One tampering at a time, at every line of a six-entry log: exactly the expected problems."""
    log = AuditLog(tmp_path)
    _fill(log, 6)
    original, head = _lines(log), log.head_path.read_text()
    seq, line = position + 1, position + 1

    def found_after(lines: list[str]) -> list[tuple[int, int | None, str]]:
        _write(log, lines)
        log.head_path.write_text(head)
        return _found(log)

    edited = original[:]
    edited[position] = _rehashed(original[position], detail={"reader": "hidden"})
    assert found_after(edited) == [(line, seq, "edited")]

    deleted = original[:position] + original[position + 1:]
    assert found_after(deleted) == ([(0, 6, "truncated")] if seq == 6 else [(line, seq, "deleted")])

    forged = original[:]
    forged.insert(position, _rehashed(original[position], actor="mallory"))
    assert found_after(forged) == [(line, seq, "inserted")]

    if position < 5:
        swapped = original[:]
        swapped[position], swapped[position + 1] = swapped[position + 1], swapped[position]
        assert found_after(swapped) == [(line, seq + 1, "reordered"), (line + 1, seq, "reordered")]

"""The Iceberg SQL catalog on PostgreSQL when its server goes away: a call that finds it gone is
retried for UNREACHABLE_SECONDS and then names the database; a restart within that window goes
unnoticed; and a commit whose answer was lost with the connection is not committed twice."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.exc import OperationalError

from mesh_platform import storage
from mesh_platform.storage import Catalog, CatalogUnavailable


def _publish(catalog: Catalog, data: pa.Table, run_id: str):
    staged = catalog.new_data_file("d", "t")
    pq.write_table(data, staged.path)
    return catalog.publish("d", "t", [staged], {}, {"mesh.run_id": run_id})


@pytest.fixture
def catalog(tmp_path, pg_database) -> Catalog:
    return Catalog(tmp_path, pg_database)


def test_a_server_down_too_long_names_the_database(catalog, postgres_server, monkeypatch):
    first = _publish(catalog, pa.table({"k": ["a"]}), "r1")
    monkeypatch.setattr(storage, "UNREACHABLE_SECONDS", 2.0)
    postgres_server.stop()
    try:
        began = time.monotonic()
        with pytest.raises(CatalogUnavailable) as failure:
            catalog.current("d", "t")
        assert 2 <= time.monotonic() - began < 10
    finally:
        postgres_server.start()
    message = str(failure.value)
    assert message.startswith(f"the Iceberg catalog at postgresql+psycopg2://mesh@127.0.0.1:{postgres_server.port}/")
    assert "did not answer for 2s" in message and "Connection refused" in message
    assert catalog.current("d", "t").snapshot_id == first.snapshot_id  # the pooled connection is renewed


def test_a_restart_within_the_window_goes_unnoticed(catalog, postgres_server):
    _publish(catalog, pa.table({"k": ["a"]}), "r1")
    postgres_server.stop()
    restart = threading.Timer(2.0, postgres_server.start)
    restart.start()
    try:
        second = _publish(catalog, pa.table({"k": ["b"]}), "r2")
    finally:
        restart.join()
    assert second.summary["mesh.run_id"] == "r2"
    assert catalog.history("d", "t")[-1] == second.snapshot_id


def test_a_commit_whose_answer_was_lost_is_not_committed_again(catalog):
    _publish(catalog, pa.table({"k": ["a"]}), "r1")
    sql_catalog = catalog._catalog
    real_commit = sql_catalog.commit_table
    lost = []

    def commit_then_lose_the_answer(*args, **kwargs):
        response = real_commit(*args, **kwargs)  # committed in the database
        if not lost:
            lost.append(True)
            raise OperationalError("UPDATE iceberg_tables ...", {}, Exception("server closed the connection unexpectedly"))
        return response

    sql_catalog.commit_table = commit_then_lose_the_answer
    try:
        snapshot = _publish(catalog, pa.table({"k": ["b"]}), "r2")
    finally:
        sql_catalog.commit_table = real_commit
    assert lost and snapshot.summary["mesh.run_id"] == "r2"
    runs = [s.summary.additional_properties.get("mesh.run_id") for s in storage.published_snapshots(catalog.load_table("d", "t"))]
    assert runs == ["r1", "r2"]  # r2 once

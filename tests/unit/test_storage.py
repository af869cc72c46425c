"""The Iceberg catalog on disk: publish, time travel, schema evolution, concurrent commits,
metadata that does not grow per publish, and a home that can be moved."""

import multiprocessing
from datetime import timedelta
from concurrent.futures import ProcessPoolExecutor

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.exceptions import ValidationError

from mesh_platform.maintenance import maintain
from mesh_platform.storage import Catalog


def _publish(catalog: Catalog, ns: str, name: str, data: pa.Table, properties: dict, snapshot_properties: dict):
    staged = catalog.new_data_file(ns, name)
    pq.write_table(data, staged.path)
    return catalog.publish(ns, name, [staged], properties, snapshot_properties)


def _rows(snapshot):
    return sorted(duckdb.read_parquet(list(snapshot.files)).to_arrow_table().to_pylist(), key=str)


def test_publish_replaces_atomically_and_keeps_history(tmp_path):
    catalog = Catalog(tmp_path)
    assert catalog.current("d", "t") is None
    first = _publish(catalog, "d", "t", pa.table({"k": ["a", "b"]}), {"mesh.readers": ""}, {"mesh.run_id": "r1"})
    second = _publish(catalog, "d", "t", pa.table({"k": ["c"]}), {"mesh.readers": ""}, {"mesh.run_id": "r2"})
    assert _rows(catalog.current("d", "t")) == [{"k": "c"}]
    assert catalog.history("d", "t") == [first.snapshot_id, second.snapshot_id]
    assert _rows(catalog.current("d", "t", first.snapshot_id)) == [{"k": "a"}, {"k": "b"}]


def test_a_new_column_evolves_the_schema(tmp_path):
    catalog = Catalog(tmp_path)
    _publish(catalog, "d", "t", pa.table({"k": ["a"]}), {}, {"mesh.run_id": "r1"})
    snap = _publish(catalog, "d", "t", pa.table({"k": ["b"], "n": pa.array([1], pa.int64())}), {}, {"mesh.run_id": "r2"})
    assert snap.arrow_schema.names == ["k", "n"]
    assert _rows(snap) == [{"k": "b", "n": 1}]


def test_a_failed_commit_publishes_nothing_and_leaves_its_file_to_maintenance(tmp_path):
    catalog = Catalog(tmp_path)
    first = _publish(catalog, "d", "t", pa.table({"k": ["a"]}), {}, {"mesh.run_id": "r1"})
    staged = catalog.new_data_file("d", "t")
    pq.write_table(pa.table({"k": pa.array([1.5])}), staged.path)  # string -> double: not a legal evolution
    with pytest.raises(ValidationError, match="k: string -> double"):
        catalog.publish("d", "t", [staged], {}, {"mesh.run_id": "r2"})
    assert catalog.current("d", "t").snapshot_id == first.snapshot_id
    assert _rows(catalog.current("d", "t")) == [{"k": "a"}]
    # The writer deletes nothing once it tried to commit; maintenance removes the orphan.
    assert staged.path.exists()
    report = maintain(catalog, orphan_age=timedelta(0))
    assert not staged.path.exists()
    assert report.tables[0].removed_files == [f"data/{staged.path.name}"]
    assert _rows(catalog.current("d", "t")) == [{"k": "a"}]


def test_publishing_writes_one_metadata_file_per_commit_only(tmp_path):
    # Creating the table on every publish used to leak one metadata file each time.
    catalog = Catalog(tmp_path)
    for i in range(6):
        _publish(catalog, "d", "t", pa.table({"k": [str(i)]}), {}, {"mesh.run_id": f"r{i}"})
    metadata = sorted((tmp_path / "warehouse/d/t/metadata").glob("*.metadata.json"))
    # One when the table is created, then one per commit.
    assert len(metadata) == 1 + 6


def test_a_moved_home_reads_and_publishes_where_it_now_is(tmp_path):
    home = tmp_path / "a"
    _publish(Catalog(home), "d", "t", pa.table({"k": ["a"]}), {}, {"mesh.run_id": "r1"})
    moved = tmp_path / "b"
    home.rename(moved)
    catalog = Catalog(moved)
    assert _rows(catalog.current("d", "t")) == [{"k": "a"}]
    snap = _publish(catalog, "d", "t", pa.table({"k": ["b"]}), {}, {"mesh.run_id": "r2"})
    assert all(f.startswith(str(moved)) for f in snap.files)
    assert not home.exists()


def _publish_many(args):
    home, writer = args
    catalog = Catalog(home)
    for i in range(3):
        _publish(catalog, "d", "t", pa.table({"w": [writer], "i": [i]}), {}, {"mesh.run_id": f"{writer}-{i}"})
    return writer


def test_concurrent_publishers_all_commit(tmp_path):
    # Four processes committing to the same table at once: conflicts are retried, none lost.
    # Spawned, not forked: a fork of a process with DuckDB's and Arrow's threads can hang or die.
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert sorted(pool.map(_publish_many, [(tmp_path, w) for w in range(4)])) == [0, 1, 2, 3]
    assert len(Catalog(tmp_path).history("d", "t")) == 12


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_head_is_the_current_snapshot_and_its_summary(tmp_path, database, request):
    # SQLite: the quick read of the metadata file; PostgreSQL: through pyiceberg.
    catalog = Catalog(tmp_path, request.getfixturevalue("pg_database") if database == "postgres" else None)
    assert catalog.head("d", "t") is None
    _publish(catalog, "d", "t", pa.table({"k": ["a", "b"]}), {}, {"mesh.run_id": "r1"})
    second = _publish(catalog, "d", "t", pa.table({"k": ["c", "d", "e"]}), {}, {"mesh.run_id": "r2"})
    head = catalog.head("d", "t")
    assert (head.snapshot_id, head.timestamp_ms) == (second.snapshot_id, second.timestamp_ms)
    assert head.summary == second.summary
    assert (head.summary["total-records"], head.summary["mesh.run_id"]) == ("3", "r2")


def test_the_quick_read_sees_only_the_local_catalogs_tables(tmp_path):
    from pyiceberg.catalog.sql import SqlCatalog

    # The ADLS tables' catalog lives in the same database file under another name.
    other = SqlCatalog("mesh_adls", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path}/adls")
    other.create_namespace("d")
    other.create_table("d.t", schema=pa.schema([("k", pa.string())]))
    catalog = Catalog(tmp_path)
    assert catalog.quick_metadata("d", "t") == {}
    assert catalog.head("d", "t") is None
    _publish(catalog, "d", "t", pa.table({"k": ["a"]}), {}, {"mesh.run_id": "r1"})
    assert catalog.head("d", "t").summary["mesh.run_id"] == "r1"

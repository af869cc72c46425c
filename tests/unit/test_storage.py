"""The Iceberg catalog on disk: publish, time travel, schema evolution, concurrent commits."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.exceptions import ValidationError

from mesh_platform.product_context import AccessDenied, read_product
from mesh_platform.storage import Catalog


def _publish(catalog: Catalog, ns: str, name: str, data: pa.Table, properties: dict, snapshot_properties: dict):
    staged = catalog.staging_file(ns, name)
    pq.write_table(data, staged)
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


def test_a_failed_commit_publishes_nothing_and_removes_its_file(tmp_path):
    catalog = Catalog(tmp_path)
    first = _publish(catalog, "d", "t", pa.table({"k": ["a"]}), {}, {"mesh.run_id": "r1"})
    staged = catalog.staging_file("d", "t")
    pq.write_table(pa.table({"k": pa.array([1.5])}), staged)  # string -> double: not a legal evolution
    with pytest.raises(ValidationError, match="k: string -> double"):
        catalog.publish("d", "t", [staged], {}, {"mesh.run_id": "r2"})
    assert not staged.exists()
    assert catalog.current("d", "t").snapshot_id == first.snapshot_id
    assert _rows(catalog.current("d", "t")) == [{"k": "a"}]


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


def test_reader_enforces_the_producers_grants(tmp_path):
    catalog = Catalog(tmp_path)
    _publish(catalog, "customer", "p", pa.table({"k": ["a"]}), {"mesh.readers": "federation"}, {"mesh.run_id": "r"})
    assert read_product(catalog, "customer/p", "federation").snapshot_id is not None
    assert read_product(catalog, "customer/p", "customer").snapshot_id is not None
    with pytest.raises(AccessDenied, match=r"orders may not read customer/p: .*\['federation'\]"):
        read_product(catalog, "customer/p", "orders")
    with pytest.raises(LookupError, match="customer/q has not been published"):
        read_product(catalog, "customer/q", "federation")

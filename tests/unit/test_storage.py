"""The Iceberg catalog on disk: publish, time travel, schema evolution, concurrent commits."""

from concurrent.futures import ProcessPoolExecutor

import duckdb
import pyarrow as pa
import pytest

from mesh_platform.product_context import AccessDenied, read_product
from mesh_platform.storage import Catalog


def _rows(snapshot):
    return sorted(duckdb.read_parquet(list(snapshot.files)).to_arrow_table().to_pylist(), key=str)


def test_publish_replaces_atomically_and_keeps_history(tmp_path):
    catalog = Catalog(tmp_path)
    assert catalog.current("d", "t") is None
    first = catalog.publish("d", "t", pa.table({"k": ["a", "b"]}), {"mesh.readers": ""}, {"mesh.run_id": "r1"})
    second = catalog.publish("d", "t", pa.table({"k": ["c"]}), {"mesh.readers": ""}, {"mesh.run_id": "r2"})
    assert _rows(catalog.current("d", "t")) == [{"k": "c"}]
    assert catalog.history("d", "t") == [first.snapshot_id, second.snapshot_id]
    assert _rows(catalog.current("d", "t", first.snapshot_id)) == [{"k": "a"}, {"k": "b"}]


def test_a_new_column_evolves_the_schema(tmp_path):
    catalog = Catalog(tmp_path)
    catalog.publish("d", "t", pa.table({"k": ["a"]}), {}, {"mesh.run_id": "r1"})
    snap = catalog.publish("d", "t", pa.table({"k": ["b"], "n": pa.array([1], pa.int64())}), {}, {"mesh.run_id": "r2"})
    assert snap.arrow_schema.names == ["k", "n"]
    assert _rows(snap) == [{"k": "b", "n": 1}]


def _publish_many(args):
    home, writer = args
    catalog = Catalog(home)
    for i in range(3):
        catalog.publish("d", "t", pa.table({"w": [writer], "i": [i]}), {}, {"mesh.run_id": f"{writer}-{i}"})
    return writer


def test_concurrent_publishers_all_commit(tmp_path):
    # Four processes committing to the same table at once: conflicts are retried, none lost.
    with ProcessPoolExecutor(4) as pool:
        assert sorted(pool.map(_publish_many, [(tmp_path, w) for w in range(4)])) == [0, 1, 2, 3]
    assert len(Catalog(tmp_path).history("d", "t")) == 12


def test_reader_enforces_the_producers_grants(tmp_path):
    catalog = Catalog(tmp_path)
    catalog.publish("customer", "p", pa.table({"k": ["a"]}), {"mesh.readers": "federation"}, {"mesh.run_id": "r"})
    assert read_product(catalog, "customer/p", "federation").snapshot_id is not None
    assert read_product(catalog, "customer/p", "customer").snapshot_id is not None
    with pytest.raises(AccessDenied, match=r"orders may not read customer/p: .*\['federation'\]"):
        read_product(catalog, "customer/p", "orders")
    with pytest.raises(LookupError, match="customer/q has not been published"):
        read_product(catalog, "customer/q", "federation")

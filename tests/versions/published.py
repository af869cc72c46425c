"""Test helper: what publish records for contract versions (the `mesh.contract` table property,
see mesh_platform.contract_versions.contract_properties), written on a real local catalog."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mesh_platform.contract_versions import CONTRACT_PROPERTY
from mesh_platform.contracts import load_contract
from mesh_platform.storage import Catalog


def record_published_contract(home: Path, contract: Path, text: str | None = None) -> None:
    """Publish a version of `contract`'s product (one placeholder row) into the catalog under
    `home`, recording `text` (default: the file's) as its published contract, as publish does."""
    c = load_contract(contract)
    text = contract.read_text() if text is None else text
    catalog = Catalog(home)
    staged = catalog.new_data_file(c.domain, c.name)
    pq.write_table(pa.table({"placeholder": ["x"]}), staged.path)
    version = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("version:")), c.version)
    catalog.publish(
        c.domain, c.name, [staged],
        properties={CONTRACT_PROPERTY: text, "mesh.contract_version": version},
        snapshot_properties={"mesh.contract_version": version, "mesh.run_id": str(uuid.uuid4())},
    )

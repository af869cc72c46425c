"""The upload of an audited file to S3, on the session's moto server: a large file goes in parts
and arrives whole; the endpoint going down between two parts is one clear error that publishes
nothing, and maintenance aborts the upload it left unfinished."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote, urlsplit

import duckdb
import pyarrow.dataset as ds
import pytest
from aws_helpers import apply_aws, prod  # noqa: F401 (prod: a fixture)
from netfault import CutRelay

from mesh_platform.cloud.aws import AwsError
from mesh_platform.maintenance import maintain
from mesh_platform.places import table
from mesh_platform.registry import product_contract

ROWS = 400_000  # md5 text does not compress: about 25 MiB of Parquet, over boto3's 8 MiB part size


def _large_file(path) -> str:
    """A Parquet file of ROWS distinct rows; its sha256."""
    duckdb.sql(f"COPY (SELECT md5(i::VARCHAR) || md5((i + {ROWS})::VARCHAR) AS customer_id FROM range({ROWS}) r(i)) "
               f"TO '{path}' (FORMAT parquet)")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_large_file_is_uploaded_in_parts_and_committed_whole(prod, aws):
    apply_aws()
    profiles = table(product_contract("customer/profiles"), "prod", prod.home)
    staged = profiles.new_data_file()
    digest = _large_file(staged.path)
    size = staged.path.stat().st_size
    assert size > 3 * 8 * 2**20, size

    snapshot = profiles.publish([staged], {}, {"mesh.run_id": "upload-test"})

    assert not staged.path.exists(), "the local copy goes once it is uploaded"
    bucket, key = staged.uri.split("://", 1)[1].split("/", 1)
    s3 = aws.client("s3")
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith(f"-{-(-size // (8 * 2**20))}"), head["ETag"]  # one part per 8 MiB
    assert hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() == digest
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert snapshot.files == (staged.uri,)
    filesystem, to_path = profiles.catalog.filesystem()
    rows = ds.dataset([to_path(f) for f in snapshot.files], filesystem=filesystem, format="parquet")
    assert rows.count_rows() == ROWS


def test_the_endpoint_going_down_between_two_parts_publishes_nothing_and_maintenance_aborts_the_rest(
        prod, aws, monkeypatch):
    apply_aws()
    profiles = table(product_contract("customer/profiles"), "prod", prod.home)
    first = profiles.new_data_file()
    _large_file(first.path)
    before = profiles.publish([first], {}, {"mesh.run_id": "first"})
    glue = aws.client("glue")
    metadata = glue.get_table(DatabaseName="customer-domain", Name="profiles")["Table"]["Parameters"]["metadata_location"]

    staged = profiles.new_data_file()
    _large_file(staged.path)
    s3 = aws.client("s3")

    def part_two_once_another_is_stored(method: str, path: str, headers: dict) -> bool:
        if method != "PUT" or "partNumber=2" not in path:
            return False
        # The parts go up at once: part 2 is held until another one is stored, or it could be cut
        # before any arrived, and S3 would then keep nothing to abort.
        where = urlsplit(path)
        bucket, key = unquote(where.path).lstrip("/").split("/", 1)
        upload_id = parse_qs(where.query)["uploadId"][0]
        deadline = time.monotonic() + 30
        while not s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts") and time.monotonic() < deadline:
            time.sleep(0.02)
        return True

    with CutRelay(aws.endpoint, part_two_once_another_is_stored) as relay:
        monkeypatch.setenv("AWS_ENDPOINT_URL", relay.endpoint)
        with pytest.raises(AwsError) as caught:
            profiles.publish([staged], {}, {"mesh.run_id": "second"})
        assert relay.cut_request and "partNumber=2" in relay.cut_request

    message = str(caught.value)
    assert message.startswith(f"AWS endpoint {relay.endpoint} is not reachable ("), message
    assert message.endswith(f"while uploading {staged.uri}: nothing was published; the previous snapshot stays current")
    assert not staged.path.exists(), "the local copy of the unpublished file is gone"
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    assert glue.get_table(DatabaseName="customer-domain", Name="profiles")["Table"]["Parameters"][
        "metadata_location"] == metadata
    assert profiles.current().snapshot_id == before.snapshot_id
    bucket, key = staged.uri.split("://", 1)[1].split("/", 1)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=key), "no object from the parts sent"

    # The abort went to the dead endpoint too: S3 keeps the part that arrived, listed nowhere else.
    def unfinished():
        return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])

    [upload] = unfinished()
    assert upload["Key"] == key
    part = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"])["Parts"]
    ours = [("customer-domain", "profiles")]
    # Moto reports every upload as begun on one fixed day in 2010: a window reaching past it
    # stands for an upload younger than the window (maybe a publish in progress).
    age = datetime.now(timezone.utc) - upload["Initiated"]
    young = maintain(profiles.catalog, tables=ours, orphan_age=age + timedelta(days=1))
    assert young.removed_files == 0 and unfinished() == [upload]
    report = maintain(profiles.catalog, tables=ours, orphan_age=timedelta(0))
    assert report.tables[0].removed_files == [f"data/{key.rsplit('/', 1)[1]} (unfinished upload)"]
    assert report.tables[0].removed_bytes == sum(p["Size"] for p in part) > 0
    assert unfinished() == []
    assert profiles.current().snapshot_id == before.snapshot_id and profiles.current().files == before.files

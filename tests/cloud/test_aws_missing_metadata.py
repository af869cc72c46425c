"""A Glue table whose Iceberg metadata file is gone from S3 (deleted, its bucket emptied): reading
or publishing the product is one AwsError naming the endpoint and the missing object."""

from __future__ import annotations

import duckdb
import pytest
from aws_helpers import apply_aws, prod  # noqa: F401 (prod: a fixture)

from mesh_platform.cloud.aws import AwsError
from mesh_platform.places import table
from mesh_platform.registry import product_contract


def test_a_table_whose_metadata_is_gone_is_one_clear_error(prod, aws):
    apply_aws()
    profiles = table(product_contract("customer/profiles"), "prod", prod.home)
    staged = profiles.new_data_file()
    duckdb.sql(f"COPY (SELECT 'c1' AS customer_id) TO '{staged.path}' (FORMAT parquet)")
    profiles.publish([staged], {}, {"mesh.run_id": "first"})
    metadata = aws.client("glue").get_table(DatabaseName="customer-domain", Name="profiles")["Table"][
        "Parameters"]["metadata_location"]
    bucket, key = metadata.split("://", 1)[1].split("/", 1)
    aws.client("s3").delete_object(Bucket=bucket, Key=key)

    gone = f"has no object {metadata}, which the catalog names: it was deleted, or its bucket emptied"
    with pytest.raises(AwsError) as read:
        profiles.current()
    assert str(read.value) == f"AWS endpoint {aws.endpoint} {gone}, while reading customer-domain.profiles"

    again = profiles.new_data_file()
    duckdb.sql(f"COPY (SELECT 'c2' AS customer_id) TO '{again.path}' (FORMAT parquet)")
    with pytest.raises(AwsError) as publish:
        profiles.publish([again], {}, {"mesh.run_id": "second"})
    assert str(publish.value).startswith(f"AWS endpoint {aws.endpoint} {gone}, while publishing customer-domain.profiles: ")
    glue_table = aws.client("glue").get_table(DatabaseName="customer-domain", Name="profiles")["Table"]
    assert glue_table["Parameters"]["metadata_location"] == metadata, "nothing was committed"

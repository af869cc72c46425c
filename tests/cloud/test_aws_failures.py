"""AWS unreachable or refusing: one clear error naming the endpoint, and nothing half-published.
The endpoint goes down for real: a dead loopback port, moto with authentication on, and a relay
in front of moto that stops answering at the upload of the data file or at the Glue commit."""

from __future__ import annotations

import pytest
from aws_helpers import apply_aws, prod  # noqa: F401 (prod: a fixture)
from aws_helpers import materialize_on_aws
from conftest import step_failure_messages
from netfault import CutRelay

from mesh_platform import cli
from mesh_platform.cloud.aws import AwsError
from mesh_platform.emulators import MotoServer, free_port
from mesh_platform.places import table
from mesh_platform.registry import product_contract


def _profiles(home):
    return table(product_contract("customer/profiles"), "prod", home)


def _published(instance) -> int:
    apply_aws()
    result = materialize_on_aws("customer", instance)
    assert result.success, step_failure_messages(result)
    return result


def test_plan_with_the_endpoint_down_is_one_clear_error_naming_it(prod, aws, monkeypatch, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("DAGSTER_HOME", str(prod.dagster_home))  # the CLI sets it; restored after the test
    assert cli.main(["infra", "plan", "--cloud", "aws"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f'mesh infra plan: AWS endpoint {dead} is not reachable (Could not connect to the endpoint URL: '
        f'"{dead}/ListResources"), while reading the AWS state (plan)'
    ]


def test_wrong_credentials_are_one_clear_error_naming_the_endpoint(prod, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")  # moto checks every request's credentials
    with MotoServer(state_dir=tmp_path / "moto-auth") as strict:
        for key, value in strict.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("DAGSTER_HOME", str(prod.dagster_home))
        assert cli.main(["infra", "apply", "--cloud", "aws"]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f"mesh infra apply: AWS endpoint {strict.endpoint} refused the credentials (InvalidClientTokenId: The "
            "security token included in the request is invalid.), while reading the AWS state (plan)"
        ]
        with pytest.raises(AwsError, match=rf"^AWS endpoint {strict.endpoint} refused the credentials "
                                           r"\(InvalidClientTokenId: .*\), while reading customer-domain.profiles$"):
            _profiles(prod.home).current()


def test_a_publish_with_the_endpoint_down_fails_naming_it_and_the_previous_snapshot_stays(prod, aws, instance, monkeypatch):
    _published(instance)
    before = _profiles(prod.home).current().snapshot_id
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    result = materialize_on_aws("customer", instance)
    assert not result.success
    message = step_failure_messages(result)
    assert f"AWS endpoint {dead} is not reachable (" in message and "while reading customer-domain.profiles" in message
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    assert _profiles(prod.home).current().snapshot_id == before


@pytest.mark.parametrize("moment", ["upload", "commit"])
def test_the_endpoint_going_down_mid_publish_leaves_the_previous_snapshot_current(prod, aws, instance, monkeypatch, moment):
    _published(instance)
    profiles = _profiles(prod.home)
    before, history = profiles.current().snapshot_id, profiles.history()
    glue = aws.client("glue")
    metadata = glue.get_table(DatabaseName="customer-domain", Name="profiles")["Table"]["Parameters"]["metadata_location"]

    def cut_when(method: str, path: str, headers: dict[str, str]) -> bool:
        target = {k.lower(): v for k, v in headers.items()}.get("x-amz-target", "")
        if moment == "upload":
            return method in ("PUT", "POST") and "/profiles/data/mesh-" in path
        return target == "AWSGlue.UpdateTable"

    with CutRelay(aws.endpoint, cut_when) as relay:
        monkeypatch.setenv("AWS_ENDPOINT_URL", relay.endpoint)
        result = materialize_on_aws("customer", instance)
        assert relay.cut_request, "the relay never saw the request it was to cut at"
    assert not result.success
    message = step_failure_messages(result)
    assert f"AWS endpoint {relay.endpoint} is not reachable (" in message, message
    assert "while publishing customer-domain.profiles" in message or "while uploading s3://mesh-customer-domain" in message
    if moment == "upload":
        assert "nothing was published; the previous snapshot stays current" in message
    else:
        assert "the commit did not complete; the previous snapshot stays current unless Glue received it" in message

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)  # the endpoint is back
    assert glue.get_table(DatabaseName="customer-domain", Name="profiles")["Table"]["Parameters"][
        "metadata_location"] == metadata
    assert profiles.current().snapshot_id == before and profiles.history() == history
    assert not list((prod.home / "tmp" / "staging").glob("*")), "the local copy of the unpublished file is gone"
    again = materialize_on_aws("customer", instance)  # and the next publish goes through
    assert again.success, step_failure_messages(again)
    assert profiles.current().snapshot_id != before

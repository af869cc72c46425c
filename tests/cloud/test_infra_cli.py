"""`mesh infra plan|apply [--cloud ...] [--detailed-exitcode]` against moto's server."""

from __future__ import annotations

import pytest
from aws_helpers import create_tables, principal, prod  # noqa: F401 (prod: a fixture)

from mesh_platform import cli
from mesh_platform.cloud import infra


@pytest.fixture
def mesh(prod, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(prod.dagster_home))  # the CLI sets it; restored after the test

    def run(*argv: str) -> tuple[int, list[str], list[str]]:
        code = cli.main(list(argv))
        out = capsys.readouterr()
        return code, out.out.splitlines(), out.err.splitlines()

    return run


def test_plan_apply_and_plan_again(mesh, aws):
    code, out, _ = mesh("infra", "plan", "--cloud", "aws", "--detailed-exitcode")
    assert code == 2
    assert "+ aws: create glue database customer-domain (location=s3://mesh-customer-domain, tags=Domain=Customer, " \
           "Owner=customer-team, DataProduct=true)" in out
    assert out[-1] == "15 to change on aws"
    assert sum(line.startswith("  aws: waiting: ") for line in out) == 5

    code, out, _ = mesh("infra", "apply", "--cloud", "aws")
    assert code == 0 and out[-1] == "15 applied on aws"
    assert mesh("infra", "plan", "--cloud", "aws", "--detailed-exitcode")[0] == 0

    create_tables(aws)
    code, out, _ = mesh("infra", "plan", "--cloud", "aws", "--detailed-exitcode")
    assert code == 2 and out == [
        f"+ aws: grant lakeformation permissions of {principal(reader)} on table {t} "
        f"(permissions=DESCRIBE, SELECT, principal_of={reader})"
        for t, reader in (("customer-domain.profiles", "federation"), ("orders-domain.history", "customer"),
                          ("orders-domain.history", "federation"), ("preferences-domain.settings", "customer"),
                          ("preferences-domain.settings", "federation"))
    ] + ["5 to change on aws"]
    assert mesh("infra", "apply", "--cloud", "aws")[0] == 0
    code, out, _ = mesh("infra", "plan", "--cloud", "aws", "--detailed-exitcode")
    assert (code, out) == (0, ["nothing to change on aws"])
    assert mesh("infra", "plan", "--cloud", "aws")[0] == 0  # without --detailed-exitcode: 0 either way


def test_every_cloud_by_default(mesh, aws, bigquery, azure, arm):
    code, out, err = mesh("infra", "plan")
    assert code == 0, err
    changes = [line for line in out if line[:2] in ("+ ", "~ ", "- ")]
    assert out[-1] == f"{len(changes)} to change on aws, gcp, azure"
    for cloud in ("aws", "gcp", "azure"):
        assert any(line.startswith(f"+ {cloud}: create ") for line in out), cloud


def test_an_unknown_cloud_or_the_dev_environment_is_refused(mesh, monkeypatch, capsys):
    with pytest.raises(SystemExit) as refused:
        mesh("infra", "plan", "--cloud", "oracle")
    assert refused.value.code == 2 and "invalid choice: 'oracle'" in capsys.readouterr().err
    monkeypatch.setenv("MESH_ENV", "dev")
    code, _, err = mesh("infra", "apply")
    assert code == 2 and err == ["mesh infra: cloud infrastructure exists in the prod environment only (MESH_ENV=dev); "
                                 "run it with MESH_ENV=prod"]

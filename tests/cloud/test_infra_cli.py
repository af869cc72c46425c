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
    assert sum(line.startswith("  aws: waiting: ") for line in out) == 3

    code, out, _ = mesh("infra", "apply", "--cloud", "aws")
    assert code == 0 and out[-1] == "15 applied on aws"
    assert mesh("infra", "plan", "--cloud", "aws", "--detailed-exitcode")[0] == 0

    create_tables(aws)
    code, out, _ = mesh("infra", "plan", "--cloud", "aws", "--detailed-exitcode")
    assert code == 2 and out == [
        f"+ aws: grant lakeformation permissions of {principal('federation')} on table {t} "
        "(permissions=DESCRIBE, SELECT, principal_of=federation)"
        for t in ("customer-domain.profiles", "orders-domain.history", "preferences-domain.settings")
    ] + ["3 to change on aws"]
    assert mesh("infra", "apply", "--cloud", "aws")[0] == 0
    code, out, _ = mesh("infra", "plan", "--cloud", "aws", "--detailed-exitcode")
    assert (code, out) == (0, ["nothing to change on aws"])
    assert mesh("infra", "plan", "--cloud", "aws")[0] == 0  # without --detailed-exitcode: 0 either way


def test_every_cloud_by_default_skipping_those_not_installed(mesh, aws):
    code, out, err = mesh("infra", "plan")
    assert code == 0
    for cloud in infra.CLOUDS:
        if not infra.available(cloud):
            assert f"{cloud}: skipped (mesh_platform/cloud/{cloud}.py is not installed yet)" in err
    assert any(line.startswith("+ aws: ") for line in out)


def test_a_cloud_not_installed_or_the_dev_environment_is_refused(mesh, monkeypatch):
    missing = [c for c in infra.CLOUDS if not infra.available(c)]
    if missing:
        code, _, err = mesh("infra", "plan", "--cloud", missing[0])
        assert code == 2 and err == [f"mesh infra: no provisioner for {missing[0]} yet (mesh_platform/cloud/<cloud>.py)"]
    monkeypatch.setenv("MESH_ENV", "dev")
    code, _, err = mesh("infra", "apply")
    assert code == 2 and err == ["mesh infra: cloud infrastructure exists in the prod environment only (MESH_ENV=dev); "
                                 "run it with MESH_ENV=prod"]

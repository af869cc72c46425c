"""Cloud infrastructure derived from the contracts and the deployment file, reconciled like
Terraform: `plan` lists the difference between what should exist and what does, `apply` makes
it so (idempotently, revoking what is no longer granted), and drift is what `plan` finds after
an apply.

Each cloud has a provisioner (cloud/aws.py, cloud/gcp.py, cloud/azure.py) that reads the actual
state with the cloud's SDK and turns each Change into calls. What the provisioners see is the
same for all: every product contract of the workspace, and the active deployment file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mesh_platform.contracts import Contract
from mesh_platform.deployment import Settings

CLOUDS = ("aws", "gcp", "azure")


@dataclass(frozen=True)
class Change:
    cloud: str  # aws | gcp | azure
    action: str  # create | update | delete | grant | revoke
    resource: str  # what it is about, e.g. "glue database customer-domain"
    detail: dict = field(default_factory=dict, compare=False)  # desired and actual, for people

    def __str__(self) -> str:
        sign = {"create": "+", "grant": "+", "update": "~", "delete": "-", "revoke": "-"}.get(self.action, "?")
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.detail.items()))
        return f"{sign} {self.cloud}: {self.action} {self.resource}" + (f" ({extra})" if extra else "")


class Provisioner(Protocol):
    cloud: str

    def plan(self) -> list[Change]:
        """What apply would change, read from the cloud now; empty when in step."""

    def apply(self, changes: list[Change]) -> None:
        """Make `changes` (from plan) so."""


def product_contracts() -> list[Contract]:
    """Every product contract of the workspace (the desired state's source)."""
    from mesh_platform.registry import workspace_entries

    return [e.contract for e in workspace_entries(skip="").values()]


def provisioner(cloud: str, settings: Settings, contracts: list[Contract]) -> Provisioner:
    if settings.env != "prod":
        raise ValueError(f"infrastructure exists in the prod environment only (MESH_ENV={settings.env})")
    if cloud == "aws":
        from mesh_platform.cloud.aws import AwsProvisioner

        return AwsProvisioner(settings, contracts)
    if cloud == "gcp":
        from mesh_platform.cloud.gcp import GcpProvisioner

        return GcpProvisioner(settings, contracts)
    if cloud == "azure":
        from mesh_platform.cloud.azure import AzureProvisioner

        return AzureProvisioner(settings, contracts)
    raise ValueError(f"unknown cloud {cloud!r}: one of {list(CLOUDS)}")


def plan(settings: Settings, clouds: list[str] | tuple[str, ...] = CLOUDS) -> list[Change]:
    contracts = product_contracts()
    return [c for cloud in clouds for c in provisioner(cloud, settings, contracts).plan()]


def grant_first_publish(settings: Settings, contract: Contract, actor: str) -> list[Change]:
    """Right after a product's first publish on AWS: the Lake Formation grants its contract names
    on the table, which could not exist before (readers need not wait for the next apply). The
    table's creator holds every permission on it with the grant option, so this is within the
    publishing team's own rights."""
    if contract.server(settings.env).type != "glue":
        return []
    from mesh_platform.cloud.aws import AwsProvisioner

    p = AwsProvisioner(settings, product_contracts())
    changes = p.table_grants(contract)
    p.apply(changes)
    _audit(settings, "aws", changes, actor)
    return changes


def _audit(settings: Settings, cloud: str, changes: list[Change], actor: str) -> None:
    from mesh_platform.audit import AuditLog

    audit = AuditLog(settings.home)
    for change in changes:
        action = "grant" if change.action == "grant" else "revoke" if change.action == "revoke" else "infra_change"
        audit.append(action, actor, None, cloud=cloud, change=change.action, resource=change.resource,
                     **{k: str(v) for k, v in change.detail.items()})


def apply(settings: Settings, clouds: list[str] | tuple[str, ...] = CLOUDS, actor: str = "platform") -> list[Change]:
    """Apply every cloud's plan; returns what was changed, each change in the audit log."""
    contracts = product_contracts()
    done = []
    for cloud in clouds:
        p = provisioner(cloud, settings, contracts)
        changes = p.plan()
        p.apply(changes)
        _audit(settings, cloud, changes, actor)
        done += changes
    return done

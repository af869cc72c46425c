"""What the platform provisions on Azure for products whose prod place is an `azure` server,
reconciled like Terraform (cloud/infra.py): `plan` reads what exists and lists the difference,
`apply` makes it so; both idempotent, drift is a non-empty plan.

Per product, from its contract and the deployment file's `azure` section:

- its ADLS Gen2 filesystem (the location's container), tagged with the product's tags as
  container metadata: DataProduct (e.g. CustomerInsights), Domain (Customer), Owner (the owning
  team). Real Azure keeps resource tags on ARM resources (the storage account), not on
  containers; the account is a prerequisite the platform does not create (see README), so the
  tags travel with the filesystem, and with the workspace and resource group, which are ARM
  resources;
- its read access, compiled from the contract (acl.py): grants and revocations per reader;
- the Synapse workspace its server names (customProperties synapseWorkspace), in the deployment's
  resource group (created if missing): system-assigned identity, the product's filesystem as
  its default data lake storage, the product's tags. A workspace that exists with another
  default storage or in another region cannot be changed into the desired one (Synapse fixes
  both at creation): plan raises AzureConflict naming it, rather than planning a replacement.

Azure Resource Manager is reached with the real SDKs (azure-mgmt-resource, azure-mgmt-synapse)
at https://management.azure.com with DefaultAzureCredential, or at AZURE_RESOURCE_MANAGER_URL
(deployment.azure_settings): over plain HTTP only to loopback (a test's endpoint), and then
without a bearer token, which the SDK refuses to send without TLS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from mesh_platform.cloud.azure.acl import (
    OWNER,
    TRAVERSE,
    acl_spec,
    compile_acl,
    container_metadata,
    granted_acl,
    metadata_value,
    record_key,
)
from mesh_platform.cloud.azure.adls import (
    LOOPBACK,
    AdlsLocation,
    AzureStorageError,
    Connection,
    explain,
    first_line,
    server_location,
    server_property,
)
from mesh_platform.cloud.infra import Change
from mesh_platform.contracts import Contract
from mesh_platform.deployment import Settings

CLOUD = "azure"
SYSTEM_ASSIGNED = "SystemAssigned"
PUBLIC_ARM = "https://management.azure.com"
WORKSPACE_PROPERTY = "synapseWorkspace"


class AzureConflict(RuntimeError):
    """A resource exists with settings the platform cannot change in place."""


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def product_tags(contract: Contract) -> dict[str, str]:
    """The product's Azure tags: DataProduct=CustomerInsights, Domain=Customer, Owner=<team>."""
    return {
        "DataProduct": camel(contract.domain) + camel(contract.name),
        "Domain": camel(contract.domain),
        "Owner": contract.team,
    }


@dataclass(frozen=True)
class AzureProduct:
    contract: Contract
    location: AdlsLocation
    workspace: str | None
    tags: dict[str, str]
    acl: dict[str, str]  # Entra ID object id -> permissions

    @property
    def key(self) -> str:
        return self.contract.key


def azure_products(contracts: list[Contract], env: str, principals: dict[str, str]) -> list[AzureProduct]:
    out = []
    for contract in contracts:
        for server in contract.servers:
            if server.environment == env and server.type == CLOUD:
                out.append(AzureProduct(
                    contract, server_location(contract, server), server_property(server, WORKSPACE_PROPERTY),
                    product_tags(contract), compile_acl(contract, principals, env),
                ))
    return out


class _NoToken:
    """The credential of a loopback ARM endpoint: never asked (no bearer token without TLS)."""

    def get_token(self, *scopes, **kwargs):
        raise RuntimeError("no Azure credential is used for a loopback Resource Manager endpoint")


def arm_connection() -> tuple[object, dict]:
    """The credential and client options for Azure Resource Manager."""
    from mesh_platform.deployment import azure_settings

    url = azure_settings().get("resource-manager-url", PUBLIC_ARM).rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme == "http":
        if parsed.hostname not in LOOPBACK:
            raise ValueError(f"AZURE_RESOURCE_MANAGER_URL={url}: plain HTTP is allowed to a loopback endpoint only; "
                             "Azure Resource Manager is reached over HTTPS")
        from azure.core.pipeline.policies import SansIOHTTPPolicy

        return _NoToken(), {"base_url": url, "authentication_policy": SansIOHTTPPolicy()}
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(), {"base_url": url, "credential_scopes": [f"{url}/.default"]}


class AzureProvisioner:
    cloud = CLOUD

    def __init__(self, settings: Settings, contracts: list[Contract]):
        self.settings = settings
        self.config = settings.deployment.get(CLOUD) or {}
        self.principals: dict[str, str] = dict(self.config.get("principals") or {})
        self.products = azure_products(contracts, settings.env, self.principals)
        for p in self.products:
            if p.location.account != self.config.get("storage_account"):
                raise ValueError(
                    f"{p.contract.path}: its azure server's storage account '{p.location.account}' is not the "
                    f"deployment's ({self.config.get('storage_account')!r}, deployments/{settings.env}.yaml azure.storage_account)"
                )

    # -- clients ------------------------------------------------------------------------------
    def _resource_client(self):
        from azure.mgmt.resource.resources import ResourceManagementClient

        credential, options = arm_connection()
        return ResourceManagementClient(credential, self.config["subscription_id"], **options)

    def _synapse_client(self):
        from azure.mgmt.synapse import SynapseManagementClient

        credential, options = arm_connection()
        return SynapseManagementClient(credential, self.config["subscription_id"], **options)

    @property
    def resource_group(self) -> str:
        return self.config["resource_group"]

    def workspace_id(self, name: str) -> str:
        return (f"/subscriptions/{self.config['subscription_id']}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Synapse/workspaces/{name}")

    # -- plan and apply -------------------------------------------------------------------------
    def plan(self) -> list[Change]:
        return [change for change, _ in self._planned()]

    def apply(self, changes: list[Change]) -> None:
        """Carry out `changes` (from plan), each from the state read now: what is already so is
        skipped, and an operation several changes share (one ACL write per path) runs once."""
        ops = dict(self._planned())
        done: set[int] = set()
        for change in changes:
            op = ops.get(change)
            if op is None or id(op) in done:
                continue
            op()
            done.add(id(op))

    def _planned(self) -> list[tuple[Change, Callable[[], None]]]:
        if not self.products:
            return []
        out = []
        connections = {p.location.account: Connection.for_account(p.location.account) for p in self.products}
        for product in self.products:
            out += self._plan_filesystem(product, connections[product.location.account])
        with_workspace = [p for p in self.products if p.workspace]
        if with_workspace:
            out += self._plan_resource_group(with_workspace)
            synapse = self._synapse_client()
            for product in with_workspace:
                out += self._plan_workspace(synapse, product)
        return out

    # -- the filesystem: tags and access --------------------------------------------------------
    def _plan_filesystem(self, product: AzureProduct, connection: Connection) -> list:
        location = product.location
        what = f"planning {product.key}"
        hns = connection.hierarchical_namespace(what)
        metadata = container_metadata(connection, location, what)
        resource = f"adls filesystem {location.filesystem} ({connection.account})"
        out = []
        if metadata is None:
            out.append((Change(CLOUD, "create", resource, {"tags": product.tags}),
                        lambda: self._create_filesystem(connection, product)))
            granted: dict[str, str] = {}
        else:
            wrong = {k: v for k, v in product.tags.items() if metadata_value(metadata, k) != v}
            if wrong:
                actual = {k: metadata_value(metadata, k) for k in wrong}
                out.append((Change(CLOUD, "update", resource, {"tags": wrong, "actual": actual}),
                            lambda: self._write_metadata(connection, product, {})))
            granted = granted_acl(connection, location, hns, what) or {}
            recorded = metadata_value(metadata, record_key(location))
            if hns and recorded != acl_spec(product.acl) and granted == product.acl:
                # The POSIX ACL is right; the platform's record of it is not: rewrite the record.
                out.append((Change(CLOUD, "update", f"adls acl record {location.fs_path}", {}),
                            lambda: self._write_acl(connection, product, hns, {})))
        # One write makes the whole ACL of the path right: every grant and revoke shares it.
        revoked = {oid: perms for oid, perms in granted.items() if oid not in product.acl}
        write = lambda: self._write_acl(connection, product, hns, revoked)  # noqa: E731
        names = {oid: name for name, oid in self.principals.items()}
        for oid in sorted(set(product.acl) | set(granted)):
            want, have = product.acl.get(oid), granted.get(oid)
            if want == have:
                continue
            detail = {"principal": oid, "permissions": want or have,
                      "enforced_by": "posix acl" if hns else "platform reader"}
            if want and have:
                detail["was"] = have
            out.append((Change(CLOUD, "grant" if want else "revoke", f"adls acl {location.fs_path} {names.get(oid, oid)}",
                               detail), write))
        return out

    def _create_filesystem(self, connection: Connection, product: AzureProduct) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        location = product.location
        with connection.blob_resource().get_client() as service:
            try:
                service.create_container(location.filesystem, metadata=product.tags)
            except ResourceExistsError:
                self._write_metadata(connection, product, {})
            except HttpResponseError as exc:
                raise AzureStorageError(explain(exc, f"creating filesystem '{location.filesystem}' in '{connection.account}'")) from None

    def _write_metadata(self, connection: Connection, product: AzureProduct, extra: dict[str, str]) -> None:
        """The filesystem's metadata with the product's tags and `extra` set; other keys kept."""
        from azure.core.exceptions import HttpResponseError

        location = product.location
        what = f"tagging filesystem '{location.filesystem}' of '{connection.account}'"
        metadata = container_metadata(connection, location, what) or {}
        ours = {k.lower() for k in [*product.tags, *extra]}
        merged = {k: v for k, v in metadata.items() if k.lower() not in ours} | product.tags | extra
        with connection.blob_resource().get_client() as service:
            try:
                service.get_container_client(location.filesystem).set_container_metadata(merged)
            except HttpResponseError as exc:
                raise AzureStorageError(explain(exc, what)) from None

    def _write_acl(self, connection: Connection, product: AzureProduct, hns: bool, revoked: dict[str, str]) -> None:
        """Record the compiled ACL on the filesystem; on a hierarchical namespace also set it as
        the directory's POSIX ACL and take the revoked principals' entries off."""
        location = product.location
        if hns:
            self._set_posix_acl(connection, product, revoked)
        self._write_metadata(connection, product, {record_key(location): acl_spec(product.acl)})

    def _set_posix_acl(self, connection: Connection, product: AzureProduct, revoked: dict[str, str]) -> None:
        """Hierarchical namespace only (real ADLS Gen2; no emulator has it: see README)."""
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        location = product.location
        client = connection.adls2_resource().adls2_client.get_file_system_client(location.filesystem)
        directory = client.get_directory_client(location.path)
        try:
            try:
                directory.create_directory()
            except ResourceExistsError:
                pass
            directory.update_access_control_recursive(acl=acl_spec(product.acl))
            if revoked:
                gone = ",".join(f"{scope}user:{oid}" for oid in sorted(revoked) for scope in ("", "default:"))
                directory.remove_access_control_recursive(acl=gone)
            root = client.get_directory_client("/")
            root.update_access_control_recursive(
                acl=",".join(f"user:{oid}:{TRAVERSE if perms != OWNER else OWNER}" for oid, perms in sorted(product.acl.items()))
            )
        except HttpResponseError as exc:
            raise AzureStorageError(explain(exc, f"setting the ACL of {location.uri}")) from None

    # -- the resource group and the Synapse workspace -------------------------------------------
    def _plan_resource_group(self, products: list[AzureProduct]) -> list:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        rg = self.resource_group
        # Tagged with what its products have in common (all of them, for a single product).
        tags = dict(sorted(set.intersection(*(set(p.tags.items()) for p in products))))
        resource = f"resource group {rg}"
        try:
            group = self._resource_client().resource_groups.get(rg)
        except ResourceNotFoundError:
            body = {"location": self.config["location"], "tags": tags}
            return [(Change(CLOUD, "create", resource, dict(body)), lambda: self._put_resource_group(body))]
        except HttpResponseError as exc:
            raise AzureConflict(explain(exc, f"reading {resource}")) from None
        have = dict(group.tags or {})
        wrong = {k: v for k, v in tags.items() if have.get(k) != v}
        if not wrong:
            return []
        body = {"location": group.location, "tags": have | tags}
        return [(Change(CLOUD, "update", resource, {"tags": wrong, "actual": {k: have.get(k) for k in wrong}}),
                 lambda: self._put_resource_group(body))]

    def _put_resource_group(self, body: dict) -> None:
        self._resource_client().resource_groups.create_or_update(self.resource_group, body)

    def desired_workspace(self, product: AzureProduct):
        from azure.mgmt.synapse.models import DataLakeStorageAccountDetails, ManagedIdentity, Workspace

        return Workspace(
            location=self.config["location"],
            tags=dict(product.tags),
            identity=ManagedIdentity(type=SYSTEM_ASSIGNED),
            default_data_lake_storage=DataLakeStorageAccountDetails(
                account_url=product.location.dfs_url, filesystem=product.location.filesystem,
            ),
        )

    def _plan_workspace(self, synapse, product: AzureProduct) -> list:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        name = product.workspace
        resource = f"synapse workspace {name}"
        desired = self.desired_workspace(product)
        try:
            actual = synapse.workspaces.get(self.resource_group, name)
        except ResourceNotFoundError:
            detail = {"location": desired.location, "identity": SYSTEM_ASSIGNED, "tags": desired.tags,
                      "default_storage": f"{product.location.dfs_url}/{product.location.filesystem}"}
            return [(Change(CLOUD, "create", resource, detail), lambda: self._create_workspace(synapse, product))]
        except HttpResponseError as exc:
            raise AzureConflict(explain(exc, f"reading {resource} ({self.workspace_id(name)})")) from None

        storage = actual.default_data_lake_storage
        have_storage = (_norm_url(storage.account_url) if storage else None, storage.filesystem if storage else None)
        want_storage = (_norm_url(desired.default_data_lake_storage.account_url), desired.default_data_lake_storage.filesystem)
        problems = []
        if have_storage != want_storage:
            problems.append(f"its default data lake storage is {_storage(*have_storage)}, not {_storage(*want_storage)}")
        if _norm_region(actual.location) != _norm_region(desired.location):
            problems.append(f"it is in region '{actual.location}', not '{desired.location}'")
        if problems:
            raise AzureConflict(
                f"synapse workspace '{name}' ({self.workspace_id(name)}) exists, but {' and '.join(problems)} "
                f"({product.contract.path}, deployments/{self.settings.env}.yaml azure): Synapse cannot change these on "
                "an existing workspace. Delete it (or point the contract's synapseWorkspace at another name) and apply again."
            )
        have_tags = dict(actual.tags or {})
        wrong = {k: v for k, v in desired.tags.items() if have_tags.get(k) != v}
        identity = getattr(actual.identity, "type", None) or "None"
        detail = {}
        if wrong:
            detail |= {"tags": wrong, "actual_tags": {k: have_tags.get(k) for k in wrong}}
        if SYSTEM_ASSIGNED not in str(identity):
            detail |= {"identity": SYSTEM_ASSIGNED, "actual_identity": str(identity)}
        if not detail:
            return []
        return [(Change(CLOUD, "update", resource, detail),
                 lambda: self._update_workspace(synapse, product, have_tags | desired.tags, identity))]

    def _create_workspace(self, synapse, product: AzureProduct) -> None:
        from azure.core.exceptions import HttpResponseError

        try:
            synapse.workspaces.begin_create_or_update(self.resource_group, product.workspace,
                                                      self.desired_workspace(product)).result()
        except HttpResponseError as exc:
            raise AzureConflict(explain(exc, f"creating synapse workspace '{product.workspace}' "
                                             f"({self.workspace_id(product.workspace)})")) from None

    def _update_workspace(self, synapse, product: AzureProduct, tags: dict[str, str], identity: str) -> None:
        from azure.core.exceptions import HttpResponseError
        from azure.mgmt.synapse.models import ManagedIdentity, WorkspacePatchInfo

        # SystemAssigned added to a user-assigned identity, not put in its place.
        kind = SYSTEM_ASSIGNED if identity in ("None", SYSTEM_ASSIGNED) or SYSTEM_ASSIGNED in identity else f"{SYSTEM_ASSIGNED},{identity}"
        try:
            synapse.workspaces.begin_update(self.resource_group, product.workspace, WorkspacePatchInfo(
                tags=tags, identity=ManagedIdentity(type=kind),
            )).result()
        except HttpResponseError as exc:
            raise AzureConflict(explain(exc, f"updating synapse workspace '{product.workspace}' "
                                             f"({self.workspace_id(product.workspace)})")) from None


def _norm_url(url: str | None) -> str | None:
    return url.rstrip("/").lower() if url else None


def _norm_region(region: str | None) -> str:
    return (region or "").replace(" ", "").lower()


def _storage(url: str | None, filesystem: str | None) -> str:
    return f"{url}/{filesystem}" if url else "none"


__all__ = ["AzureConflict", "AzureProvisioner", "first_line"]

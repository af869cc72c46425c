"""Who may read an ADLS product: compiled from its contract into POSIX ACL entries on the
table's directory, recorded on its filesystem, and checked by the platform's reader.

The model is ADLS Gen2's own: POSIX ACLs, which an account with a hierarchical namespace checks
on every read of a path, so one filesystem can hold products with different readers (a role
assignment such as Storage Blob Data Reader covers a whole container, and takes ARM rights and
minutes to propagate). From the contract, with each name's Entra ID object id taken from the
deployment file (azure.principals):

- the owning team (team.name): rwx;
- each reader (`roles`, access: read) whose grant hides no column: r-x;
- a reader whose grant masks or excludes columns: no entry. The files hold those columns in the
  clear, so such a reader must never read them directly: it reads through the platform's
  reader, which masks (access.Reader).
Each entry is set as an access and a default entry (files written later inherit it); on an
account with a hierarchical namespace each principal also gets --x on the filesystem's root,
to reach the path.

Where it lives. The compiled ACL is always recorded on the filesystem, as container metadata
`mesh_acl_<path>` in ACL spec form (Blob API: Azure and Azurite alike): the platform's record of
what it granted. On an account with a hierarchical namespace the entries are also the
directory's POSIX ACL, and that is what is read back. Azurite has no hierarchical namespace: there
the record is all there is, nothing in the emulator enforces it, and only the platform's reader
does (adls_denial), on every read of another domain.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mesh_platform.cloud.azure.adls import AdlsLocation, AzureStorageError, Connection, explain

if TYPE_CHECKING:
    from mesh_platform.contracts import Contract

OWNER, READ, TRAVERSE = "rwx", "r-x", "--x"
RECORD_PREFIX = "mesh_acl_"
_ENTRY = re.compile(r"^user:(?P<oid>[^:]+):(?P<perms>[r-][w-][x-])$")


class MissingPrincipal(ValueError):
    pass


def compile_acl(contract: Contract, principals: dict[str, str], env: str = "prod") -> dict[str, str]:
    """Entra ID object id -> permissions, for `contract`'s product."""

    def oid(name: str, why: str) -> str:
        if not principals.get(name):
            raise MissingPrincipal(
                f"{contract.path}: {why} '{name}' has no Entra ID object id in "
                f"mesh_platform/deployments/{env}.yaml azure.principals: no ACL can name it"
            )
        return principals[name]

    acl = {oid(contract.team, "the owning team"): OWNER}
    for grant in contract.grants:
        if grant.mask or grant.exclude:
            continue  # reads through the platform only, masked: never the files
        acl.setdefault(oid(grant.reader, "the reader"), READ)
    return acl


def acl_spec(acl: dict[str, str]) -> str:
    """The ACL in ADLS's spec form: access and default entries per principal."""
    return ",".join(f"{scope}user:{oid}:{perms}" for oid, perms in sorted(acl.items()) for scope in ("", "default:"))


def parse_spec(spec: str | None) -> dict[str, str]:
    """The named users' access entries of an ACL spec (base and default entries left out)."""
    out = {}
    for entry in (spec or "").split(","):
        m = _ENTRY.match(entry.strip())
        if m:
            out[m["oid"]] = m["perms"]
    return out


def record_key(location: AdlsLocation) -> str:
    """The metadata name of the ACL record of a path (a C# identifier, as Azure requires)."""
    return RECORD_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", location.path).lower()


def metadata_value(metadata: dict[str, str], key: str) -> str | None:
    """Metadata names are case-insensitive on Azure."""
    return next((v for k, v in metadata.items() if k.lower() == key.lower()), None)


def container_metadata(connection: Connection, location: AdlsLocation, what: str) -> dict[str, str] | None:
    """The filesystem's metadata, or None when it does not exist."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    with connection.blob_resource().get_client() as service:
        try:
            return dict(service.get_container_client(location.filesystem).get_container_properties().metadata)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            raise AzureStorageError(explain(exc, f"{what}: filesystem '{location.filesystem}' of '{connection.account}'")) from None


def recorded_acl(connection: Connection, location: AdlsLocation, what: str) -> dict[str, str] | None:
    metadata = container_metadata(connection, location, what)
    return None if metadata is None else parse_spec(metadata_value(metadata, record_key(location)))


def posix_acl(connection: Connection, location: AdlsLocation, what: str) -> dict[str, str] | None:
    """The directory's POSIX ACL (hierarchical namespace only), or None when it does not exist."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    client = connection.adls2_resource().adls2_client
    directory = client.get_file_system_client(location.filesystem).get_directory_client(location.path)
    try:
        return parse_spec(directory.get_access_control()["acl"])
    except ResourceNotFoundError:
        return None
    except HttpResponseError as exc:
        raise AzureStorageError(explain(exc, f"{what}: ACL of {location.uri}")) from None


def granted_acl(connection: Connection, location: AdlsLocation, hns: bool, what: str) -> dict[str, str] | None:
    """What the storage grants on the path now: its POSIX ACL when the account has a
    hierarchical namespace, else the platform's record (None: nothing there yet)."""
    return posix_acl(connection, location, what) if hns else recorded_acl(connection, location, what)


def adls_denial(table, consumer: str) -> str | None:
    """Why ADLS would refuse `consumer` the product (None: it allows): called by the platform's
    reader for every read of another domain's ADLS product, after the catalog's grant passed."""
    from mesh_platform.deployment import deployment_file
    from mesh_platform.registry import product_contract

    catalog = table.catalog
    location = AdlsLocation.parse(table.location, table.key)
    env = catalog.env
    oid = (deployment_file(env).get("azure") or {}).get("principals", {}).get(consumer)
    if not oid:
        return (f"ADLS: '{consumer}' has no Entra ID object id in mesh_platform/deployments/{env}.yaml "
                f"azure.principals, so no ACL on {location.uri} can grant it read access")
    what = f"checking {consumer}'s read of {table.key}"
    hns = catalog.connection.hierarchical_namespace(what)
    acl = granted_acl(catalog.connection, location, hns, what) or {}
    grant = next((g for g in product_contract(table.key).grants if g.reader == consumer), None)
    if grant and (grant.mask or grant.exclude):
        if oid in acl:
            return (f"ADLS: {location.uri} gives {consumer} (Entra ID object {oid}) direct access ({acl[oid]}) although "
                    "its grant hides columns: reads are refused until the azure infrastructure is applied again")
        return None  # masked reads go through the platform, never to the files
    perms = acl.get(oid, "---")
    if perms[0] == "r" and perms[2] == "x":
        return None
    where = "the directory's POSIX ACL" if hns else f"the ACL the platform recorded on filesystem '{location.filesystem}'"
    return (f"ADLS: {where} gives {consumer} (Entra ID object {oid}) no read access to {location.uri}: "
            "apply the azure infrastructure (AzureProvisioner), which compiles the contract's grants into it")

"""GCP: the federation layer on BigQuery (prod).

Three parts, all derived from the contracts and the deployment file (its `gcp` section):

- Output ports. Each input of a product that lives in BigQuery (customer_360 reads
  customer/profiles, orders/history, preferences/settings) is loaded into BigQuery as
  `<port dataset>.<product>` (customer_domain.profiles, ...) by a platform-owned asset of the
  reading location, `<location>/bigquery/<dataset>/<product>`, which follows the producer's
  publishes (eager, and only once the producer's blocking checks passed). It reads the granted
  snapshot through the platform's Reader (grants enforced, the read audited), so a domain
  publishes with only its own cloud reachable. One load job replaces the table whole
  (WRITE_TRUNCATE); each loaded snapshot is kept as a BigQuery table snapshot of the port
  (`<port>__s<snapshot id>`), and the port is labelled with the snapshot it holds (`mesh_snapshot`).
- The view product. customer_360's SQL is captured from its @product function and transpiled
  to BigQuery (cloud/bigquery_sql.py), reading the table snapshots its ports hold now (pinned).
  A run audits that candidate query in BigQuery with the contract's checks (quality.audit through
  an AuditConnection) and only when every blocking check passed replaces the routine
  (`customer_contract`, a procedure whose body creates the view) and calls it. A failed check
  fails the run; the routine and the view, and so the data consumers see, stay as they were.
- Infrastructure. GcpProvisioner reconciles the datasets: location, labels (the deployment's,
  the products' tags) and access entries (the contracts' readers, mapped to principals by the
  deployment file; the view authorized on the ports it reads), like Terraform: plan shows the
  difference, apply makes it so and revokes what is no longer granted.

Every BigQuery call goes through `BigQuery` below: bounded retries (the client's default retry
loops for 600 s) and errors that name the resource and which BigQuery was asked.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from mesh_platform.cloud import CloudError
from mesh_platform.cloud.infra import Change
from mesh_platform.contracts import ALLOW_DROP_TAG, Contract
from mesh_platform.follow import follows_inputs
from mesh_platform.deployment import Settings, deployment_file, gcp_settings

if TYPE_CHECKING:
    from mesh_platform.cloud.gcp_resource import MeshBigQueryResource
    from mesh_platform.resource import MeshResource
    from mesh_platform.spec import ProductSpec

SNAPSHOT_LABEL = "mesh_snapshot"  # on a port table: the snapshot id it holds
IN_STEP_CHECK = "in_step"  # a port's check: it holds its labelled snapshot, every row of it
PIN_SEPARATOR = "__s"  # <port table>__s<snapshot id>: a BigQuery table snapshot of the port, which views read
PINS_KEPT = 2  # a port's newest table snapshots kept besides those a view reads (one may be in a running audit)
DEFAULT_ROUTINE = "{name}_contract"
DEFAULT_PORT_DATASET = "{domain}_domain"
PLATFORM_TEAM = "platform-team"
EMULATOR_RETRY_SECONDS = 5.0  # a local emulator that does not answer is down, not busy
UPLOAD_SECONDS = 600.0  # one Parquet upload of a load job
# Access entries the platform manages: principals' READER/WRITER entries and authorized views.
# OWNER entries and special groups (projectOwners, ...) are the project's, left alone.
_PRINCIPAL_KINDS = ("userByEmail", "groupByEmail", "domain", "iamMember")
_LABEL = re.compile(r"[^a-z0-9_-]")


class GcpError(CloudError):
    """A BigQuery resource is missing, misconfigured or unreachable; the message names it."""


# --- names: what lives where ----------------------------------------------------------------


def gcp_deployment(env: str) -> dict:
    gcp = deployment_file(env).get("gcp")
    if not gcp:
        raise GcpError(f"mesh_platform/deployments/{env}.yaml has no gcp section: BigQuery is not part of {env}")
    return gcp


def port_dataset(domain: str, env: str) -> str:
    return gcp_deployment(env).get("port_dataset", DEFAULT_PORT_DATASET).format(domain=domain)


def port_table(key: str, env: str) -> str:
    """`project.dataset.table` of a product's BigQuery output port."""
    domain, name = key.split("/")
    return f"{gcp_deployment(env)['project']}.{port_dataset(domain, env)}.{name}"


def pinned_table(ref: str, snapshot_id: str) -> str:
    """The BigQuery table snapshot of a port holding one product snapshot: what views read."""
    return f"{ref}{PIN_SEPARATOR}{label_value(snapshot_id).replace('-', 'm')}"


def pin_label(key: str) -> str:
    """The label on a view saying which snapshot of input `key` it reads."""
    return label_value(f"mesh_{key.replace('/', '_')}")


def port_key(location: str, key: str, env: str) -> dg.AssetKey:
    """The asset that keeps `key`'s output port in step, owned by the reading `location`."""
    domain, name = key.split("/")
    return dg.AssetKey([location, "bigquery", port_dataset(domain, env), name])


@dataclass(frozen=True)
class ViewPlace:
    """Where a product that lives in BigQuery is: its contract's server, checked against the deployment."""

    project: str
    dataset: str
    view: str
    routine: str

    @property
    def view_ref(self) -> str:
        return f"{self.project}.{self.dataset}.{self.view}"

    @property
    def routine_ref(self) -> str:
        return f"{self.project}.{self.dataset}.{self.routine}"


def view_place(contract: Contract, env: str) -> ViewPlace:
    server = contract.server(env)
    if server.type != "bigquery":
        raise GcpError(f"{contract.path}: servers ({env}): type {server.type}, not bigquery")
    project, wanted = server.get("project"), gcp_deployment(env)["project"]
    if project != wanted:
        raise GcpError(
            f"{contract.path}: servers ({env}): project '{project}', but deployments/{env}.yaml gcp.project is "
            f"'{wanted}': the federation's datasets and its ports live in one project"
        )
    custom = {p.get("property"): p.get("value") for p in server.get("customProperties") or []}
    routine = custom.get("routine") or DEFAULT_ROUTINE.format(name=contract.name)
    return ViewPlace(project, server.get("dataset"), contract.name, routine)


def bigquery_products(contracts, env: str) -> list[Contract]:
    return [c for c in contracts if c.server(env).type == "bigquery"]


def bigquery_resource(settings: Settings | None = None) -> MeshBigQueryResource:
    """dagster-gcp's BigQueryResource for the deployment: application default credentials, or
    the emulator named by BIGQUERY_EMULATOR_HOST with anonymous credentials."""
    from mesh_platform.cloud.gcp_resource import MeshBigQueryResource

    s = settings or Settings.from_env()
    gcp, emulator = gcp_deployment(s.env), gcp_settings()["emulator_host"]
    return MeshBigQueryResource(
        project=gcp["project"], location=gcp.get("location"), emulator_host=emulator,
        retry_seconds=EMULATOR_RETRY_SECONDS if emulator else 60.0,
    )


# --- one BigQuery client, with bounded retries and errors that name things ------------------


class QueryError(GcpError):
    """A statement BigQuery refused (bad SQL, a missing table, ...)."""


class BigQuery:
    """The calls the platform makes, each with a bounded retry, errors naming the resource."""

    def __init__(self, client, resource: MeshBigQueryResource):
        from google.api_core.retry import Retry

        self.client, self.resource = client, resource
        self.retry = Retry(timeout=resource.retry_seconds)
        self.where = resource.where

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import DefaultCredentialsError

        try:
            yield
        except gexc.RetryError as exc:
            cause = exc.cause or exc
            raise GcpError(
                f"{what}: {self.where} did not answer within {self.resource.retry_seconds:g} s "
                f"({type(cause).__name__}: {_first_line(cause)})"
            ) from None
        except gexc.GoogleAPICallError as exc:
            raise GcpError(f"{what}: {self.where} answered {exc.code}: {_message(exc)}") from None
        except DefaultCredentialsError as exc:
            raise GcpError(f"{what}: no Google credentials for {self.where}: {_first_line(exc)}") from None
        except OSError as exc:  # connection refused before any retry applied
            raise GcpError(f"{what}: cannot reach {self.where}: {_first_line(exc)}") from None

    def dataset(self, project: str, dataset: str):
        from google.api_core.exceptions import NotFound

        with self._call(f"BigQuery dataset {project}:{dataset}"):
            try:
                return self.client.get_dataset(f"{project}.{dataset}", retry=self.retry)
            except NotFound:
                return None

    def require_dataset(self, project: str, dataset: str, location: str | None = None):
        found = self.dataset(project, dataset)
        if found is None:
            raise GcpError(
                f"BigQuery dataset {project}:{dataset} does not exist in {self.where}: provision the federation "
                "first (mesh_platform.cloud.infra.apply, or GcpProvisioner(...).apply)"
            )
        if location and (found.location or "").upper() != location.upper():
            raise GcpError(
                f"BigQuery dataset {project}:{dataset} is in location {found.location}, the deployment file says "
                f"{location}: BigQuery cannot move a dataset; recreate it or change gcp.location"
            )
        return found

    def table(self, ref: str):
        from google.api_core.exceptions import NotFound

        with self._call(f"BigQuery table {ref}"):
            try:
                return self.client.get_table(ref, retry=self.retry)
            except NotFound:
                return None

    def create_dataset(self, dataset) -> None:
        with self._call(f"creating BigQuery dataset {dataset.project}:{dataset.dataset_id}"):
            self.client.create_dataset(dataset, retry=self.retry)

    def update_dataset(self, dataset, fields: list[str]):
        with self._call(f"updating {', '.join(fields)} of BigQuery dataset {dataset.project}:{dataset.dataset_id}"):
            return self.client.update_dataset(dataset, fields, retry=self.retry)

    def update_table(self, table, fields: list[str]):
        with self._call(f"updating {', '.join(fields)} of BigQuery table {table.project}.{table.dataset_id}.{table.table_id}"):
            return self.client.update_table(table, fields, retry=self.retry)

    def run(self, sql: str, what: str) -> tuple[list[str], list[tuple]]:
        """Run one statement; its column names and rows. A refused statement raises QueryError."""
        from google.api_core import exceptions as gexc

        with self._call(what):
            try:
                job = self.client.query(sql, retry=self.retry, job_retry=None)
                result = job.result(retry=self.retry, timeout=max(self.resource.retry_seconds, 300))
            except (gexc.BadRequest, gexc.NotFound, gexc.Forbidden) as exc:
                raise QueryError(f"{what}: {_message(exc)}") from None
            names = [f.name for f in result.schema or []]
            return names, [tuple(row.values()) for row in result]

    def schema_of(self, sql: str, what: str) -> list:
        """The result columns of a query, from a dry run (nothing is computed)."""
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        with self._call(what):
            try:
                job = self.client.query(sql, job_config=bigquery.QueryJobConfig(dry_run=True), retry=self.retry,
                                        job_retry=None)
            except (gexc.BadRequest, gexc.NotFound, gexc.Forbidden) as exc:
                raise QueryError(f"{what}: {_message(exc)}") from None
            return list(job.schema or [])

    def load_parquet(self, path: Path, ref: str, schema: list) -> None:
        """Replace table `ref` whole with the Parquet file, in one load job."""
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            schema=schema,
        )
        options = bigquery.ParquetOptions()
        options.enable_list_inference = True  # LIST columns load as REPEATED, not as a nested record
        config.parquet_options = options
        with self._call(f"loading BigQuery table {ref}"), open(path, "rb") as f:
            try:
                job = self.client.load_table_from_file(f, ref, job_config=config, timeout=UPLOAD_SECONDS)
                job.result(retry=self.retry, timeout=max(self.resource.retry_seconds, 600))
            except (gexc.BadRequest, gexc.NotFound, gexc.Forbidden) as exc:
                raise GcpError(f"loading BigQuery table {ref}: {_message(exc)}") from None

    def snapshot_table(self, source: str, target: str) -> None:
        """A BigQuery table snapshot of `source` as it is now (read-only; zero-copy on BigQuery)."""
        self.run(f"CREATE SNAPSHOT TABLE `{target}` CLONE `{source}`", f"snapshotting BigQuery table {source} as {target}")

    def tables(self, project: str, dataset: str) -> list:
        with self._call(f"listing the tables of BigQuery dataset {project}:{dataset}"):
            return list(self.client.list_tables(f"{project}.{dataset}", retry=self.retry))

    def delete_table(self, ref: str) -> None:
        with self._call(f"deleting BigQuery table {ref}"):
            self.client.delete_table(ref, retry=self.retry, not_found_ok=True)

    def routine(self, ref: str):
        from google.api_core.exceptions import NotFound

        with self._call(f"BigQuery routine {ref}"):
            try:
                return self.client.get_routine(ref, retry=self.retry)
            except NotFound:
                return None

    def put_procedure(self, ref: str, body: str) -> bool:
        """Create the SQL procedure `ref` with `body`, or replace its body; True if it changed."""
        from google.cloud import bigquery

        current = self.routine(ref)
        with self._call(f"writing BigQuery routine {ref}"):
            if current is None:
                routine = bigquery.Routine(ref, type_="PROCEDURE", language="SQL", body=body, arguments=[])
                self.client.create_routine(routine, retry=self.retry)
                return True
            if current.body == body:
                return False
            current.body = body
            self.client.update_routine(current, ["body"], retry=self.retry)
            return True


@contextmanager
def connect(resource: MeshBigQueryResource) -> Iterator[BigQuery]:
    try:
        with resource.get_client() as client:
            yield BigQuery(client, resource)
    except GcpError:
        raise
    except Exception as exc:  # creating the client: credentials, project
        from google.auth.exceptions import DefaultCredentialsError

        if isinstance(exc, DefaultCredentialsError):
            raise GcpError(f"no Google credentials for {resource.where}: {_first_line(exc)}") from None
        raise


def _message(exc) -> str:
    return _first_line(getattr(exc, "message", None) or exc)


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def label_value(value: str) -> str:
    """A BigQuery label key or value: lower case letters, digits, _ and -, at most 63 characters."""
    return _LABEL.sub("_", str(value).lower())[:63]


# --- infrastructure: datasets, labels, access -----------------------------------------------


@dataclass(frozen=True)
class Access:
    """One access entry the platform manages: a principal's role, or an authorized view."""

    role: str | None  # READER, WRITER; None for an authorized view
    kind: str  # userByEmail, groupByEmail, domain, iamMember, view
    entity: str  # the principal, or the view as project.dataset.table

    def __str__(self) -> str:
        return f"authorized view {self.entity}" if self.kind == "view" else f"{self.role} {self.kind}:{self.entity}"

    def entry(self):
        from google.cloud.bigquery import AccessEntry

        if self.kind == "view":
            project, dataset, table = self.entity.split(".")
            return AccessEntry(None, "view", {"projectId": project, "datasetId": dataset, "tableId": table})
        return AccessEntry(self.role, self.kind, self.entity)

    @staticmethod
    def of(entry) -> Access | None:
        """The managed form of an actual entry, or None for one the platform leaves alone."""
        if entry.entity_type == "view":
            ref = entry.entity_id or {}
            return Access(None, "view", f"{ref.get('projectId')}.{ref.get('datasetId')}.{ref.get('tableId')}")
        if entry.entity_type in _PRINCIPAL_KINDS and entry.role in ("READER", "WRITER"):
            return Access(entry.role, entry.entity_type, entry.entity_id)
        return None


@dataclass
class DatasetSpec:
    project: str
    dataset: str
    location: str
    labels: dict[str, str]
    access: dict[Access, str]  # entry -> why (which reader of which product)

    @property
    def name(self) -> str:
        return f"bigquery dataset {self.project}:{self.dataset}"


class GcpProvisioner:
    """The BigQuery datasets of the federation and of its ports, reconciled.

    Desired: for each product that lives in BigQuery, its dataset (location from the deployment,
    labels: the deployment's, `federation: "true"` and the contract's tags; access: the building
    location's principal and each reader the contract grants); for each of their inputs, the port
    dataset of the input's domain (labels: the deployment's, `domain`, `output_port: "true"`, the
    tags; access: the principal of the location that loads it, and the view authorized to read
    it: dataset access would cover every port of the domain, and the domain's own readers read its
    products where they live). The routine and the view are not infrastructure: the product's runs
    write them, after their audit.
    """

    cloud = "gcp"

    def __init__(self, settings: Settings, contracts: list[Contract], resource: MeshBigQueryResource | None = None):
        self.settings, self.contracts = settings, list(contracts)
        self.gcp = gcp_deployment(settings.env)
        self.resource = resource or bigquery_resource(settings)

    # the desired state, from contracts and the deployment file
    def desired(self) -> dict[tuple[str, str], DatasetSpec]:
        env, gcp = self.settings.env, self.gcp
        by_key = {c.key: c for c in self.contracts}
        inputs = _declared_inputs()
        base_labels = {label_value(k): label_value(v) for k, v in (gcp.get("labels") or {}).items()}
        out: dict[tuple[str, str], DatasetSpec] = {}

        def dataset(project: str, name: str, labels: dict[str, str]) -> DatasetSpec:
            spec = out.setdefault((project, name), DatasetSpec(project, name, gcp["location"], dict(base_labels), {}))
            spec.labels.update(labels)
            return spec

        for product in bigquery_products(self.contracts, env):
            place = view_place(product, env)
            spec = dataset(place.project, place.dataset, {"federation": "true", **_tag_labels(product)})
            builder = product.domain  # the code location that builds it writes the routine and the view
            spec.access[self._principal(builder, product)] = f"{builder} builds {product.key}"
            for reader in product.readers:
                spec.access[self._principal(reader, product)] = f"{reader} reads {product.key}"
            for key in inputs.get(product.key, ()):
                source = by_key.get(key)
                if source is None:
                    continue
                domain = source.domain
                port = dataset(place.project, port_dataset(domain, env),
                               {"domain": label_value(domain), "output_port": "true", **_tag_labels(source)})
                # Only the loader and the views: dataset access covers every table of the domain's
                # ports, and the domain's own readers read its products where they live.
                port.access[self._principal(builder, product)] = f"{builder} loads {key}'s port"
                port.access[Access(None, "view", place.view_ref)] = f"{product.key} reads {key}"
        return out

    def _principal(self, reader: str, contract: Contract) -> Access:
        principals = self.gcp.get("principals") or {}
        found = principals.get(reader)
        if found is None:
            raise GcpError(
                f"{contract.path}: roles: '{reader}' must read {contract.key} in BigQuery, but "
                f"deployments/{self.settings.env}.yaml gcp.principals has no entry for it "
                f"(principals: {sorted(principals)})"
            )
        kinds = [k for k in _PRINCIPAL_KINDS if k in found]
        role = found.get("role", "READER")
        if len(kinds) != 1 or role not in ("READER", "WRITER"):
            raise GcpError(
                f"deployments/{self.settings.env}.yaml gcp.principals.{reader}: one of {list(_PRINCIPAL_KINDS)} "
                f"and role READER or WRITER expected, got {found}"
            )
        return Access(role, kinds[0], found[kinds[0]])

    # the difference
    def _diff(self, bq: BigQuery) -> list[tuple[DatasetSpec, object, list[tuple[Change, object]]]]:
        out = []
        for (project, name), want in sorted(self.desired().items()):
            actual = bq.dataset(project, name)
            items: list[tuple[Change, object]] = []
            if actual is None:
                items.append((Change("gcp", "create", want.name, {"location": want.location, "labels": _show(want.labels)}),
                              ("create", None)))
                have: set[Access] = set()
                labels_now = want.labels
            else:
                if (actual.location or "").upper() != want.location.upper():
                    raise GcpError(
                        f"{want.name} exists in location {actual.location}, but the deployment file says "
                        f"{want.location}: BigQuery cannot move a dataset; recreate it there or change gcp.location"
                    )
                have = {a for a in map(Access.of, actual.access_entries) if a is not None}
                labels_now = dict(actual.labels or {})
            if labels_now != want.labels:
                items.append((Change("gcp", "update", f"{want.name} labels",
                                     {"desired": _show(want.labels), "actual": _show(labels_now)}), ("labels", None)))
            for entry in sorted(set(want.access) - have, key=str):
                items.append((Change("gcp", "grant", f"{want.name} access {entry}", {"why": want.access[entry]}),
                              ("grant", entry)))
            for entry in sorted(have - set(want.access), key=str):
                items.append((Change("gcp", "revoke", f"{want.name} access {entry}",
                                     {"why": "granted by no contract"}), ("revoke", entry)))
            out.append((want, actual, items))
        return out

    def plan(self) -> list[Change]:
        with connect(self.resource) as bq:
            return [change for _, _, items in self._diff(bq) for change, _ in items]

    def apply(self, changes: list[Change]) -> None:
        """Make `changes` so (each still in the plan as read now; one update per dataset). The
        access list is rewritten whole, keeping the entries the platform does not manage."""
        from google.cloud import bigquery

        wanted = set(changes)
        with connect(self.resource) as bq:
            for want, actual, items in self._diff(bq):
                chosen = [op for change, op in items if change in wanted]
                if not chosen:
                    continue
                grants = {entry for op, entry in chosen if op == "grant"}
                revokes = {entry for op, entry in chosen if op == "revoke"}
                if ("create", None) in chosen:
                    ds = bigquery.Dataset(f"{want.project}.{want.dataset}")
                    ds.location = want.location
                    ds.labels = dict(want.labels)
                    ds.access_entries = [a.entry() for a in sorted(grants, key=str)]
                    bq.create_dataset(ds)
                    continue
                fields = []
                if grants or revokes:
                    kept = [e for e in actual.access_entries if Access.of(e) not in revokes]
                    have = {Access.of(e) for e in kept}
                    actual.access_entries = kept + [a.entry() for a in sorted(grants - have, key=str)]
                    fields.append("access_entries")
                if ("labels", None) in chosen:
                    actual.labels = dict(want.labels)
                    fields.append("labels")
                updated = bq.update_dataset(actual, fields)
                # BigQuery merges labels on update: a label to remove must be sent as None.
                stale = sorted(set(updated.labels or {}) - set(want.labels)) if "labels" in fields else []
                if stale:
                    updated.labels = {**dict(want.labels), **dict.fromkeys(stale)}
                    bq.update_dataset(updated, ["labels"])


def _declared_inputs() -> dict[str, tuple[str, ...]]:
    from mesh_platform.registry import workspace_entries

    return {key: entry.inputs for key, entry in workspace_entries(skip="").items()}


def _tag_labels(contract: Contract) -> dict[str, str]:
    """A contract's tags as BigQuery labels with empty values (BigQuery's tags)."""
    return {label_value(tag): "" for tag in contract.tags}


def _show(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# --- output ports: the inputs of BigQuery products, loaded from their published snapshots ------


def port_assets(location: str, contracts: dict[str, Contract], specs: dict[str, ProductSpec], env: str) -> list:
    """The port assets of `location`: one per input of its products that live in BigQuery in
    `env` (none in dev, none for a location without such products)."""
    readers: dict[str, list[str]] = {}  # input key -> the views that read it
    for name, contract in sorted(contracts.items()):
        if contract.server(env).type == "bigquery":
            for key in specs[name].inputs:
                readers.setdefault(key, []).append(view_place(contract, env).view_ref)
    return [_port_asset(location, key, env, tuple(views)) for key, views in sorted(readers.items())]


def location_resources(assets: list, settings: Settings) -> dict:
    """The `bigquery` resource, for a location that has port assets."""
    return {"bigquery": bigquery_resource(settings)} if assets else {}


def _port_asset(location: str, key: str, env: str, views: tuple[str, ...]) -> dg.AssetsDefinition:
    from mesh_platform.cloud.gcp_resource import MeshBigQueryResource
    from mesh_platform.products import table_schema
    from mesh_platform.registry import product_contract
    from mesh_platform.resource import MeshResource

    producer = product_contract(key)
    asset_key = port_key(location, key, env)
    ref = port_table(key, env)

    def _port(context, mesh, bigquery):
        yield from load_port(context, key, mesh, bigquery, views)

    # Real classes, not this module's postponed (string) annotations: Dagster resolves them.
    _port.__annotations__ = {"context": dg.AssetExecutionContext, "mesh": MeshResource, "bigquery": MeshBigQueryResource}
    return dg.asset(
        key=asset_key,
        deps=[dg.AssetKey(key.split("/"))],
        description=(
            f"{key}'s current published snapshot as the BigQuery table {ref}, the output port the "
            f"{location} location's BigQuery products read. Platform-owned: the {producer.domain} domain "
            "publishes without BigQuery; this follows each publish that passed its blocking checks, reading "
            f"the snapshot granted to {location} (read audited). Labelled {SNAPSHOT_LABEL}=<snapshot id>; "
            f"each loaded snapshot is also kept as the table snapshot {ref}{PIN_SEPARATOR}<snapshot id>, "
            f"which the views read ({', '.join(views)})."
        ),
        group_name=location,
        owners=[f"team:{PLATFORM_TEAM}"],
        kinds={"bigquery"},
        tags={"Domain": location, "Owner": PLATFORM_TEAM, "OutputPortOf": key.replace("/", ".")},
        metadata={
            "dagster/table_name": ref,
            "dagster/column_schema": table_schema(producer),
            "port_of": key,
        },
        check_specs=[dg.AssetCheckSpec(
            IN_STEP_CHECK, asset=asset_key, blocking=True,
            description="The table holds the snapshot it is labelled with, every row of it.",
        )],
        automation_condition=follows_inputs(),
    )(_port)


def load_port(context: dg.AssetExecutionContext, key: str, mesh: MeshResource, resource: MeshBigQueryResource,
              views: tuple[str, ...] = ()):
    """Load `key`'s granted current snapshot into its port table (unless it holds it already),
    keep it as a table snapshot for the views (`<port>__s<snapshot id>`), then label the port.
    Table snapshots no view reads, beyond the newest PINS_KEPT, go."""
    from mesh_platform.access import AccessDenied
    from mesh_platform.cloud.bigquery_sql import BigQuerySqlError, table_schema
    from mesh_platform.registry import product_contract

    run_id, env = context.run.run_id, mesh.env
    contract, ref = product_contract(key), port_table(key, env)
    project, dataset, _ = ref.split(".")
    label = f"{ref} (output port of {key})"
    try:
        granted = mesh.reader(run_id).read(key)
    except AccessDenied as exc:
        raise dg.Failure(description=f"{label}: not loaded: {exc}") from None
    except LookupError as exc:
        raise dg.Failure(description=f"{label}: not loaded: {exc}") from None
    snapshot = granted.snapshot
    snapshot_id, rows = str(snapshot.snapshot_id), int(snapshot.summary.get("total-records", 0))
    hidden = granted.grant
    # All NULLABLE: the producer's schema check proved its required columns; a load into REQUIRED
    # columns would only add a way to fail on the file's declared nullability.
    columns = [
        (c.name, "VARCHAR" if hidden and c.name in hidden.mask else c.physical_type, False)
        for c in contract.columns if not (hidden and c.name in hidden.exclude)
    ]
    try:
        schema = table_schema(columns)
    except BigQuerySqlError as exc:
        raise dg.Failure(description=f"{label}: not loaded: {contract.path}: {exc}") from None
    started = time.perf_counter()
    try:
        with connect(resource) as bq:
            bq.require_dataset(project, dataset, gcp_deployment(env).get("location"))
            table = bq.table(ref)
            loaded = table is None or (table.labels or {}).get(SNAPSHOT_LABEL) != snapshot_id
            if loaded:
                staged = _stage_parquet(granted, [c[0] for c in columns], Path(mesh.home), run_id)
                try:
                    bq.load_parquet(staged, ref, schema)
                finally:
                    staged.unlink(missing_ok=True)
            # The port holds the snapshot now (loaded, or labelled so by an earlier run): keep it as
            # a table snapshot before the label says so, so that a labelled snapshot always has one.
            pinned = pinned_table(ref, snapshot_id)
            pin = bq.table(pinned)
            if pin is None:
                bq.snapshot_table(ref, pinned)
                pin = bq.table(pinned)
                pin.labels = {SNAPSHOT_LABEL: snapshot_id, "mesh_contract_version": label_value(contract.version)}
                pin.description = f"{key} snapshot {snapshot_id} ({rows} rows): a table snapshot of {ref}, read by views."
                pin = bq.update_table(pin, ["labels", "description"])
            if loaded:
                table = bq.table(ref)
                table.labels = {**(table.labels or {}), SNAPSHOT_LABEL: snapshot_id,
                                "mesh_contract_version": label_value(contract.version)}
                table.description = (
                    f"{key} snapshot {snapshot_id} ({rows} rows, contract {contract.version}), the output port "
                    f"of {key} in BigQuery; loaded by the platform, run {run_id}."
                )
                table = bq.update_table(table, ["labels", "description"])
            held, actual_rows, pinned_rows = (table.labels or {}).get(SNAPSHOT_LABEL), table.num_rows, pin.num_rows
            pruned = prune_pins(bq, key, ref, snapshot_id, views)
    except GcpError as exc:
        raise dg.Failure(description=f"{label}: not loaded: {exc}") from None
    seconds = time.perf_counter() - started
    in_step = held == snapshot_id and actual_rows == rows and pinned_rows == rows
    yield dg.AssetCheckResult(
        check_name=IN_STEP_CHECK, passed=in_step, severity=dg.AssetCheckSeverity.ERROR,
        description=(f"holds snapshot {snapshot_id}, {rows} rows, and its table snapshot {pinned}" if in_step else
                     f"holds snapshot {held} with {actual_rows} rows ({pinned}: {pinned_rows}); "
                     f"the snapshot {snapshot_id} has {rows}"),
        metadata={"snapshot_id": snapshot_id, "rows": rows, "table_rows": actual_rows, "pinned_rows": pinned_rows},
    )
    if not in_step:
        raise dg.Failure(description=f"{label}: the table does not hold snapshot {snapshot_id} whole "
                                     f"(label {held}, {actual_rows} of {rows} rows)")
    if loaded:
        mesh.audit_log().append("publish", mesh.consumer, key, run_id=run_id, snapshot_id=snapshot_id, rows=rows,
                                port=f"bigquery:{ref}")
        context.log.info(f"{ref}: loaded {key} snapshot {snapshot_id} ({rows} rows)")
    else:
        context.log.info(f"{ref}: holds {key} snapshot {snapshot_id} already")
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": rows,
        "snapshot_id": snapshot_id,
        "table": ref,
        "table_snapshot": pinned,
        "loaded": loaded,
        "pruned": dg.MetadataValue.json(pruned),
        "load_s": round(seconds, 3),
    })


def prune_pins(bq: BigQuery, key: str, ref: str, current: str, views: tuple[str, ...]) -> list[str]:
    """Delete the port's table snapshots that no view reads, except the current one and the
    newest PINS_KEPT (a view's audit may be reading one right now); the deleted names."""
    project, dataset, name = ref.split(".")
    pins = [t for t in bq.tables(project, dataset) if t.table_id.startswith(f"{name}{PIN_SEPARATOR}")]
    keep = {pinned_table(ref, current).split(".")[-1]}
    for view in views:
        table = bq.table(view)
        held = (table.labels or {}).get(pin_label(key)) if table is not None else None
        if held:
            keep.add(pinned_table(ref, held).split(".")[-1])
    newest = sorted(pins, key=lambda t: t.created or 0, reverse=True)[:PINS_KEPT]
    keep |= {t.table_id for t in newest}
    doomed = sorted(t.table_id for t in pins if t.table_id not in keep)
    for table_id in doomed:
        bq.delete_table(f"{project}.{dataset}.{table_id}")
    return doomed


def _stage_parquet(granted, columns: list[str], home: Path, run_id: str) -> Path:
    """The granted snapshot as one local Parquet file, streamed batch by batch."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    folder = home / "tmp" / "bigquery"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}-{uuid.uuid4().hex[:8]}.parquet"
    if not granted.files:
        pq.write_table(granted.snapshot.arrow_schema.empty_table().select(columns), path)
        return path
    source = ds.dataset(list(granted.files), filesystem=granted.filesystem, format="parquet")
    scanner = source.scanner(columns=columns)
    with pq.ParquetWriter(path, scanner.projected_schema) as writer:
        for batch in scanner.to_batches():
            writer.write_batch(batch)
    return path


# --- the view product: audit the candidate, then replace the routine and call it --------------


def run_view_product(context: dg.AssetExecutionContext, contract: Contract, spec: ProductSpec, mesh: MeshResource):
    """A product that lives in BigQuery: its SQL (captured from its function, transpiled)
    audited in BigQuery with its contract's checks, then the routine replaced and called."""
    from mesh_platform.cloud import bigquery_sql as bqsql
    from mesh_platform.governance import apply_grants
    from mesh_platform.publish import PublishBlocked, _check_result, _explain
    from mesh_platform import last_audit
    from mesh_platform.quality import audit, volume_outcome

    label, run_id, env = contract.key, context.run.run_id, mesh.env
    audit_log = mesh.audit_log()
    apply_grants(mesh.grants(), audit_log, mesh.consumer, contract)
    timings = {}
    try:
        place = view_place(contract, env)
        ports = {key: port_table(key, env) for key in spec.inputs}
        captured = bqsql.capture(contract, spec)
    except (GcpError, bqsql.BigQuerySqlError) as exc:
        raise dg.Failure(description=f"{label}: nothing published: {exc}") from None

    resource, stage = bigquery_resource(), "nothing published"
    try:
        with connect(resource) as bq:
            bq.require_dataset(place.project, place.dataset, gcp_deployment(env).get("location"))
            # Each input as the snapshot its port holds now, pinned: the candidate and then the view
            # read these table snapshots, so later port loads reach consumers only through an audit.
            held, tables = {}, {}
            for key, ref in ports.items():
                table = bq.table(ref)
                snapshot_id = (table.labels or {}).get(SNAPSHOT_LABEL) if table is not None else None
                pinned = pinned_table(ref, snapshot_id) if snapshot_id else None
                if pinned is None or bq.table(pinned) is None:
                    raise GcpError(f"the BigQuery output port of {key} ({ref}) holds no snapshot yet: "
                                   f"materialize {port_key(contract.domain, key, env).to_user_string()} first")
                held[key], tables[key] = snapshot_id, pinned
            try:
                candidate = bqsql.to_bigquery(captured, tables)
            except bqsql.BigQuerySqlError as exc:
                raise GcpError(str(exc)) from None

            def run(sql: str):
                try:
                    return bq.run(sql, f"{label}: a check on the candidate view")
                except QueryError as exc:
                    raise bqsql.QueryFailed(str(exc)) from None

            con = bqsql.AuditConnection(run, candidate, tables)
            start = time.perf_counter()
            try:
                fields = bq.schema_of(con.translate(f"SELECT * FROM {bqsql.OUTPUT}"), f"{label}: the candidate view")
                outcomes = audit(con, contract, bqsql.actual_types(contract, fields))
                rows = None
                if outcomes[0].passed:
                    rows = con.execute(f"SELECT count(*) FROM {bqsql.OUTPUT}").fetchall()[0][0]
                    if contract.volume_max_drop is not None:
                        allowed = context.run.tags.get(ALLOW_DROP_TAG, "").lower() == "true"
                        outcomes.append(volume_outcome(contract, rows, _previous_rows(context), allowed))
            finally:
                con.close()
            timings["audit_s"] = time.perf_counter() - start

            for outcome in outcomes:
                yield _check_result(outcome)
            blocked = [o for o in outcomes if o.blocking and not o.passed]
            if blocked:
                last_audit.record(mesh.home, label, outcomes, published=False)
                audit_log.append("publish_blocked", mesh.consumer, label, run_id=run_id,
                                 failed_checks=[o.name for o in blocked], view=place.view_ref)
                raise PublishBlocked(
                    description=f"{label}: not published, blocking checks failed on the candidate view in BigQuery; "
                    f"the view {place.view_ref} and the routine {place.routine_ref} stay as they were.\n"
                    + "\n".join(_explain(o) for o in blocked),
                    metadata={"failed_checks": [o.name for o in blocked]},
                )

            start = time.perf_counter()
            stage = "the checks passed, but publishing failed"
            body = f"CREATE OR REPLACE VIEW `{place.view_ref}` AS\n{candidate}"
            changed = bq.put_procedure(place.routine_ref, body)
            bq.run(f"CALL `{place.routine_ref}`()", f"{label}: calling the routine {place.routine_ref}")
            view = bq.table(place.view_ref)
            if view is None:
                raise GcpError(f"the routine {place.routine_ref} ran but created no view {place.view_ref}")
            view.labels = {
                **{pin_label(k): label_value(v) for k, v in held.items()},
                "mesh_contract_version": label_value(contract.version),
            }
            view.description = (
                f"{contract.description}\n\nBuilt by the routine {place.routine_ref} (run {run_id}), "
                f"contract {contract.version}, from "
                + ", ".join(f"{tables[k]} (snapshot {v})" for k, v in held.items())
            )
            bq.update_table(view, ["labels", "description"])
            timings["publish_s"] = time.perf_counter() - start
            last_audit.record(mesh.home, label, outcomes, published=True)
    except GcpError as exc:
        raise dg.Failure(description=f"{label}: {stage}: {exc}") from None

    upstream = {k: str(v) for k, v in held.items()}
    audit_log.append("publish", mesh.consumer, label, run_id=run_id, rows=rows, contract_version=contract.version,
                     view=place.view_ref, routine=place.routine_ref, upstream=upstream)
    context.log.info(f"{label}: {place.view_ref} ({rows} rows) by {place.routine_ref}"
                     + ("" if changed else " (routine unchanged)"))
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": rows,
        "view": place.view_ref,
        "routine": place.routine_ref,
        "routine_changed": changed,
        "upstream_snapshots": dg.MetadataValue.json(upstream),
        "contract_version": contract.version,
        "sql": dg.MetadataValue.md(f"```sql\n{candidate}\n```"),
        **{k: round(v, 3) for k, v in timings.items()},
    })


def _previous_rows(context: dg.AssetExecutionContext) -> int | None:
    """The row count of the view's last published build, as its materialization recorded it."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("dagster/row_count")
    return int(value.value) if value is not None and value.value is not None else None

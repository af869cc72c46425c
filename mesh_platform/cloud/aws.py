"""AWS in the prod environment: the domains' Glue databases, S3 buckets and Lake Formation
permissions, derived from the product contracts whose prod server is `type: glue` and from the
deployment file's `aws` section (account, region, principals), and reconciled like Terraform.

What each domain gets (one Glue database per `database` its contracts name):

- the S3 bucket of its products' locations, tagged Domain, Owner and DataProduct;
- the Glue database (LocationUri the bucket, no default permissions for new tables, so Lake
  Formation alone governs them), with the same tags;
- the bucket registered as a Lake Formation data location;
- Lake Formation permissions: CREATE_TABLE, ALTER and DROP on the database and
  DATA_LOCATION_ACCESS on the bucket for the owning team's principal (`aws.principals[<team>]`);
  SELECT and DESCRIBE on each product table for each reader its contract grants
  (`aws.principals[<code location>]`). A grant that masks or excludes columns becomes DESCRIBE
  on the table and SELECT on the allowed columns only (TableWithColumns): masked columns are not
  granted in the clear; the platform's reader hands them to that reader as keyed hashes
  (mesh_platform.access), which Lake Formation has no notion of.

Grants on a table need the table, and a product's table appears at its first publish: until
then its grants are *waiting* (`AwsProvisioner.waiting()`, shown by `mesh infra plan` and the
drift check), and the next apply after the publish makes them. Grants on tables that exist only
are what moto and AWS agree on (AWS refuses a grant on a missing table; moto accepts it).

The plan reads the actual state with boto3 and compares it with the desired state; apply makes
the difference (creating, tagging, granting, and revoking every permission on the managed
databases, tables and locations that the contracts do not imply, including grants made outside
the platform). It never deletes a bucket or a database: data are not infrastructure to drop.

Lake Formation stores grants; on AWS it also enforces them for the engines it vends credentials
to, but the platform reads S3 with its own principal, and moto enforces nothing. So the platform's
reader checks Lake Formation itself before every cross-domain read (`lake_formation_denial`).

Endpoints and credentials are boto3's standard settings (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
...); any failure to reach AWS or an AWS refusal becomes one AwsError naming the endpoint.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mesh_platform.cloud import CloudError
from mesh_platform.cloud.infra import Change
from mesh_platform.contracts import Contract, ContractError
from mesh_platform.deployment import Settings, aws_settings

OWNER_PERMISSIONS = ("ALTER", "CREATE_TABLE", "DROP")  # the owning team, on its database
LOCATION_PERMISSIONS = ("DATA_LOCATION_ACCESS",)  # the owning team, on its bucket
READ_PERMISSIONS = ("DESCRIBE", "SELECT")  # each granted reader, on the table
COLUMN_PERMISSIONS = ("SELECT",)  # a reader with masked or excluded columns, on the others
TAG_KEYS = ("Domain", "Owner", "DataProduct")
SERVER_TYPE = "glue"
# Error codes with which AWS refuses who is calling rather than what is asked.
CREDENTIAL_CODES = {
    "InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "ExpiredTokenException", "InvalidToken", "AuthFailure", "IncompleteSignature",
    "MissingAuthenticationToken", "InvalidSignatureException",
}
ACCESS_CODES = {"403", "AccessDenied", "AccessDeniedException", "Forbidden"}
# A principal Lake Formation hands over to IAM: not ours to judge, LF would not refuse.
IAM_ALLOWED_PRINCIPALS = "IAM_ALLOWED_PRINCIPALS"


# -- errors ------------------------------------------------------------------------------------
class AwsError(CloudError):
    """AWS could not be reached, or refused the call: one message naming the endpoint."""

    def __init__(self, endpoint: str, problem: str, doing: str = "", outcome: str = ""):
        self.endpoint, self.problem, self.doing, self.outcome = endpoint, problem, doing, outcome
        text = f"AWS endpoint {endpoint} {problem}"
        if doing:
            text += f", while {doing}"
        if outcome:
            text += f": {outcome}"
        super().__init__(text)

    def with_outcome(self, outcome: str) -> AwsError:
        return AwsError(self.endpoint, self.problem, self.doing, outcome)


def endpoint(region: str, service: str = "glue", error: BaseException | None = None) -> str:
    """The endpoint a call went to: the one the error names, else the standard settings'
    override, else AWS's public endpoint of the service in the region."""
    url = (getattr(error, "kwargs", None) or {}).get("endpoint_url") if error is not None else None
    if not url:
        url = aws_settings(region).get("endpoint")
    if not url:
        url = f"https://{service}.{aws_settings(region)['region']}.amazonaws.com"
    match = re.match(r"^([a-z0-9+.-]+://[^/]+)", url)
    return match.group(1) if match else url


def _error_code(error) -> tuple[str, str]:
    info = error.response.get("Error", {}) if hasattr(error, "response") else {}
    code, message = str(info.get("Code", "")), str(info.get("Message", ""))
    # Some services answer an authentication failure with an XML body in a JSON protocol.
    inner = re.search(r"<Code>([^<]+)</Code>", message)
    if inner:
        text = re.search(r"<Message>([^<]*)</Message>", message)
        code, message = inner.group(1), text.group(1) if text else ""
    return code, message


@contextlib.contextmanager
def clear_errors(region: str, doing: str = "", service: str = "glue") -> Iterator[None]:
    """Turn botocore's and pyarrow's AWS failures into one AwsError naming the endpoint."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    try:
        yield
    except AwsError:
        raise
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise AwsError(
            endpoint(region, service), f"was not called: no AWS credentials ({exc}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role", doing,
        ) from None
    except ClientError as exc:
        code, message = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in CREDENTIAL_CODES or (status == 403 and "credential" in message.lower()):
            problem = f"refused the credentials ({code}: {message})"
        elif code in ACCESS_CODES:
            problem = (f"refused access ({code}: {message or 'Forbidden'}): check the credentials and what the "
                       "platform's principal may do (README: Environments)")
        else:
            problem = f"answered {exc.operation_name} with {code}: {message}"
        raise AwsError(endpoint(region, service, exc), problem, doing) from None
    except BotoCoreError as exc:  # connection refused or closed, timeouts, TLS, proxy
        raise AwsError(endpoint(region, service, exc), f"is not reachable ({exc})", doing) from None
    except OSError as exc:  # pyarrow's S3 filesystem: "AWS Error <KIND> during <Operation> ..."
        text = str(exc)
        gone = re.search(r"Path does not exist '([^']+)'", text) if isinstance(exc, FileNotFoundError) else None
        if gone:  # an object the catalog names: deleted, or its bucket emptied under the table
            raise AwsError(endpoint(region, "s3"), f"has no object s3://{gone[1]}, which the catalog names: "
                           "it was deleted, or its bucket emptied", doing) from None
        if "AWS Error" not in text:
            raise
        s3 = endpoint(region, "s3")
        if any(k in text for k in ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH")):
            raise AwsError(s3, f"refused the request ({text})", doing) from None
        if any(k in text for k in ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Couldn't connect")):
            raise AwsError(s3, f"is not reachable ({text})", doing) from None
        raise AwsError(s3, f"failed ({text})", doing) from None


# -- clients -----------------------------------------------------------------------------------
def client(service: str, region: str):
    """A boto3 client; endpoint and credentials from the standard settings (read by boto3)."""
    return _client(service, tuple(sorted(aws_settings(region).items())))


@functools.lru_cache(maxsize=32)
def _client(service: str, settings: tuple[tuple[str, str], ...]):
    import boto3
    from botocore.config import Config

    region = dict(settings)["region"]
    # Few, quick retries: a dead endpoint gives its error in seconds, not minutes.
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60)
    return boto3.session.Session().client(service, region_name=region, config=config)


# -- the desired state -------------------------------------------------------------------------
@dataclass(frozen=True)
class Domain:
    """One Glue database and its bucket, as the contracts naming them want them."""

    database: str
    bucket: str
    domain: str
    team: str
    products: tuple[Contract, ...]

    @property
    def tags(self) -> dict[str, str]:
        return {"Domain": _title(self.domain), "Owner": self.team, "DataProduct": "true"}

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"


def _title(domain: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[_\-\s]+", domain))


def glue_contracts(contracts: list[Contract], env: str) -> list[Contract]:
    """The products whose place in `env` is a Glue table."""
    out = []
    for contract in contracts:
        try:
            server = contract.server(env)
        except ContractError:
            continue  # no place in this environment: its location does not load there either
        if server.type == SERVER_TYPE:
            out.append(contract)
    return out


def _bucket_of(contract: Contract, env: str) -> str:
    location = contract.server(env).get("location") or ""
    match = re.match(r"^s3a?://([^/]+)(/|$)", location)
    if not match:
        raise ContractError(contract.path, "servers.location", f"an s3://bucket/path location expected, got {location!r}")
    return match.group(1)


def domains(contracts: list[Contract], env: str) -> list[Domain]:
    by_db: dict[str, list[Contract]] = {}
    for contract in glue_contracts(contracts, env):
        database = contract.server(env).get("database")
        if not database:
            raise ContractError(contract.path, "servers.database", "a glue server names its Glue database")
        by_db.setdefault(database, []).append(contract)
    out = []
    for database, products in sorted(by_db.items()):
        for what, values in (
            ("domain", {c.domain for c in products}), ("team", {c.team for c in products}),
            ("bucket", {_bucket_of(c, env) for c in products}),
        ):
            if len(values) != 1:
                paths = ", ".join(str(c.path) for c in products)
                raise ContractError(
                    paths, "servers", f"the products of Glue database {database} name several {what}s "
                    f"{sorted(values)}: one database belongs to one domain, team and bucket",
                )
        c = products[0]
        out.append(Domain(database, _bucket_of(c, env), c.domain, c.team, tuple(sorted(products, key=lambda p: p.name))))
    return out


# -- Lake Formation permissions as comparable values -------------------------------------------
@dataclass(frozen=True)
class Target:
    """What a permission is on, normalised: ('database', db), ('table', db, name),
    ('columns', db, name, cols...), ('location', arn), or something unmanaged."""

    kind: str
    key: tuple[str, ...]

    def resource(self) -> dict:
        if self.kind == "database":
            return {"Database": {"Name": self.key[0]}}
        if self.kind == "table":
            return {"Table": {"DatabaseName": self.key[0], "Name": self.key[1]}}
        if self.kind == "columns":
            return {"TableWithColumns": {"DatabaseName": self.key[0], "Name": self.key[1], "ColumnNames": list(self.key[2:])}}
        if self.kind == "location":
            return {"DataLocation": {"ResourceArn": self.key[0]}}
        raise ValueError(f"no Lake Formation resource for {self}")

    def describe(self) -> str:
        if self.kind == "database":
            return f"database {self.key[0]}"
        if self.kind == "table":
            return f"table {self.key[0]}.{self.key[1]}"
        if self.kind == "columns":
            return f"columns {self.key[0]}.{self.key[1]}({', '.join(self.key[2:])})"
        if self.kind == "location":
            return f"data location {self.key[0]}"
        return f"{self.kind} {'.'.join(self.key)}"

    @property
    def database(self) -> str | None:
        return self.key[0] if self.key and self.kind in ("database", "table", "columns", "columns-except", "wildcard") else None


@dataclass(frozen=True)
class Held:
    """One (principal, target) pair's permissions as Lake Formation lists them: merged, and per
    listed entry (AWS may list one table's permissions under two resource shapes; a revoke names
    each as listed)."""

    principal: str
    target: Target
    permissions: frozenset[str]
    grantable: frozenset[str]
    entries: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = ()  # (resource as JSON, perms, grantable)


def _target(resource: dict, columns_of: Callable[[str, str], tuple[str, ...] | None]) -> Target:
    if "Database" in resource:
        return Target("database", (resource["Database"]["Name"],))
    if "Table" in resource:
        t = resource["Table"]
        if "TableWildcard" in t:
            return Target("wildcard", (t["DatabaseName"], "*"))
        return Target("table", (t["DatabaseName"], t["Name"]))
    if "TableWithColumns" in resource:
        t = resource["TableWithColumns"]
        db, name = t["DatabaseName"], t["Name"]
        if "ColumnNames" in t:
            return Target("columns", (db, name, *sorted(t["ColumnNames"])))
        excluded = set((t.get("ColumnWildcard") or {}).get("ExcludedColumnNames") or [])
        if not excluded:
            return Target("table", (db, name))  # every column: how AWS lists SELECT on a table
        known = columns_of(db, name)
        if known is None:
            return Target("columns-except", (db, name, *sorted(excluded)))
        return Target("columns", (db, name, *sorted(c for c in known if c not in excluded)))
    if "DataLocation" in resource:
        return Target("location", (resource["DataLocation"]["ResourceArn"],))
    kind = next(iter(resource), "unknown")
    return Target(kind.lower(), (json.dumps(resource[kind], sort_keys=True, default=str),) if resource else ())


def list_permissions(lf, **filters) -> list[dict]:
    """Every PrincipalResourcePermissions entry (ListPermissions pages by NextToken)."""
    out, token = [], None
    while True:
        page = lf.list_permissions(**filters, **({"NextToken": token} if token else {}))
        out += page.get("PrincipalResourcePermissions", [])
        token = page.get("NextToken")
        if not token:
            return out


def _held(entries: list[dict], columns_of) -> list[Held]:
    merged: dict[tuple[str, Target], dict[str, tuple[set, set]]] = {}
    for e in entries:
        principal = e.get("Principal", {}).get("DataLakePrincipalIdentifier", "")
        resource = e.get("Resource", {})
        target = _target(resource, columns_of)
        raw = json.dumps(resource, sort_keys=True, default=str)
        perms, grantable = merged.setdefault((principal, target), {}).setdefault(raw, (set(), set()))
        perms.update(e.get("Permissions") or [])
        grantable.update(e.get("PermissionsWithGrantOption") or [])
    out = []
    for (principal, target), raws in merged.items():
        entries_ = tuple((r, frozenset(p), frozenset(g)) for r, (p, g) in sorted(raws.items()))
        out.append(Held(
            principal, target,
            frozenset().union(*(p for _, p, _ in entries_)), frozenset().union(*(g for _, _, g in entries_)), entries_,
        ))
    return out


# -- the provisioner ---------------------------------------------------------------------------
@dataclass
class _Op:
    change: Change
    run: Callable[[], None]


class AwsProvisioner:
    """Plan and apply the AWS side of the prod environment (see the module doc)."""

    cloud = "aws"

    def __init__(self, settings: Settings, contracts: list[Contract]):
        self.settings = settings
        aws = settings.deployment.get("aws") or {}
        self.account = str(aws.get("account", ""))
        self.region = aws_settings(aws.get("region") or "us-east-1")["region"]
        self.principals: dict[str, str] = dict(aws.get("principals") or {})
        self.domains = domains(contracts, settings.env)
        self._last: tuple[list[_Op], list[str]] | None = None

    # -- public ---------------------------------------------------------------------------
    def plan(self) -> list[Change]:
        ops, _ = self._diff()
        return [op.change for op in ops]

    def waiting(self) -> list[str]:
        """Grants that wait for their table's first publish (made by the next apply after it)."""
        if self._last is None:
            self._diff()
        return list(self._last[1])

    def table_grants(self, contract: Contract) -> list[Change]:
        """The grants on `contract`'s table that the plan holds (those that waited for its first
        publish); the rest of the plan is left to `mesh infra apply`."""
        database = contract.server(self.settings.env).get("database")
        on = (f" on table {database}.{contract.name}", f" on columns {database}.{contract.name}(")
        return [c for c in self.plan() if c.action == "grant" and any(o in c.resource for o in on)]

    def apply(self, changes: list[Change]) -> None:
        if not changes:
            return
        ops = {op.change: op for op in (self._last[0] if self._last else [])}
        if any(c not in ops for c in changes):
            ops = {op.change: op for op in self._diff()[0]}
        unknown = [str(c) for c in changes if c not in ops]
        if unknown:
            raise ValueError("not in the current AWS plan (plan again):\n" + "\n".join(unknown))
        with clear_errors(self.region, "applying the AWS plan"):
            for change in changes:
                ops[change].run()
        self._last = None

    # -- reading the actual state ----------------------------------------------------------
    def _clients(self):
        return client("glue", self.region), client("s3", self.region), client("lakeformation", self.region)

    def _principal(self, name: str, why: str) -> str:
        try:
            return self.principals[name]
        except KeyError:
            raise ValueError(
                f"deployment file {self.settings.env}.yaml: aws.principals has no '{name}' ({why}); "
                f"known: {sorted(self.principals)}"
            ) from None

    def _desired_permissions(self) -> dict[tuple[str, Target], tuple[frozenset[str], str]]:
        """(principal, target) -> (permissions, who): what the contracts imply."""
        want: dict[tuple[str, Target], tuple[frozenset[str], str]] = {}

        def add(principal: str, target: Target, perms, who: str) -> None:
            have, _ = want.get((principal, target), (frozenset(), who))
            want[(principal, target)] = (have | frozenset(perms), who)

        for d in self.domains:
            team = self._principal(d.team, f"the team owning {d.database}")
            add(team, Target("database", (d.database,)), OWNER_PERMISSIONS, d.team)
            add(team, Target("location", (d.bucket_arn,)), LOCATION_PERMISSIONS, d.team)
            for c in d.products:
                for g in c.grants:
                    reader = self._principal(g.reader, f"a reader of {c.key}")
                    hidden = set(g.mask) | set(g.exclude)
                    if not hidden:
                        add(reader, Target("table", (d.database, c.name)), READ_PERMISSIONS, g.reader)
                        continue
                    allowed = tuple(sorted(col.name for col in c.columns if col.name not in hidden))
                    add(reader, Target("table", (d.database, c.name)), ("DESCRIBE",), g.reader)
                    if allowed:
                        add(reader, Target("columns", (d.database, c.name, *allowed)), COLUMN_PERMISSIONS, g.reader)
        return want

    def _diff(self) -> tuple[list[_Op], list[str]]:
        want = self._desired_permissions()  # configuration errors before any call
        glue, s3, lf = self._clients()
        who = {arn: name for name, arn in self.principals.items()}
        ops: list[_Op] = []
        tables: dict[str, set[str]] = {}
        columns = {(d.database, c.name): tuple(col.name for col in c.columns) for d in self.domains for c in d.products}
        with clear_errors(self.region, "reading the AWS state (plan)"):
            registered = self._registered_locations(lf)
            for d in self.domains:
                ops += self._bucket_ops(s3, d)
                ops += self._database_ops(glue, d)
                tables[d.database] = self._tables(glue, d.database)
                if d.bucket_arn not in registered:
                    ops.append(_Op(
                        Change("aws", "create", f"lakeformation data location {d.location}", {"role": "service-linked"}),
                        functools.partial(lf.register_resource, ResourceArn=d.bucket_arn, UseServiceLinkedRole=True),
                    ))
            actual = _held(list_permissions(lf), lambda db, name: columns.get((db, name)))
        managed_dbs = {d.database for d in self.domains}
        managed_locations = {d.bucket_arn for d in self.domains}
        waiting = []
        have = {
            (h.principal, h.target): h
            for h in actual
            if h.target.database in managed_dbs or (h.target.kind == "location" and h.target.key[0] in managed_locations)
        }
        revokes, grants = [], []
        for key, h in sorted(have.items(), key=lambda kv: (kv[0][1].describe(), kv[0][0])):
            wanted = want.get(key, (frozenset(), ""))[0]
            extra, extra_grantable = h.permissions - wanted, h.grantable
            if not extra and not extra_grantable:
                continue
            detail = {"permissions": ", ".join(sorted(extra)) or "-",
                      "principal_of": who.get(h.principal, "not in the deployment file")}
            if extra_grantable:
                detail["grant_option"] = ", ".join(sorted(extra_grantable))
            calls = [
                functools.partial(lf.revoke_permissions, Principal={"DataLakePrincipalIdentifier": h.principal},
                                  Resource=json.loads(raw), Permissions=sorted(perms & extra),
                                  PermissionsWithGrantOption=sorted(grantable))
                for raw, perms, grantable in h.entries
                if perms & extra or grantable
            ]
            revokes.append(_Op(
                Change("aws", "revoke", f"lakeformation permissions of {h.principal} on {h.target.describe()}", detail),
                lambda calls=calls: [call() for call in calls],
            ))
        for (principal, target), (perms, name) in sorted(want.items(), key=lambda kv: (kv[0][1].describe(), kv[0][0])):
            held = have.get((principal, target))
            missing = sorted(perms - (held.permissions if held else frozenset()))
            if not missing:
                continue
            change = Change("aws", "grant", f"lakeformation permissions of {principal} on {target.describe()}",
                            {"permissions": ", ".join(missing), "principal_of": name})
            if target.kind in ("table", "columns") and target.key[1] not in tables.get(target.key[0], set()):
                waiting.append(f"{change.resource} ({', '.join(missing)}, for {name}): waits for the table's first publish")
                continue
            grants.append(_Op(change, functools.partial(
                lf.grant_permissions, Principal={"DataLakePrincipalIdentifier": principal},
                Resource=target.resource(), Permissions=missing,
            )))
        ops += revokes + grants
        self._last = (ops, waiting)
        return ops, waiting

    def _bucket_ops(self, s3, d: Domain) -> list[_Op]:
        from botocore.exceptions import ClientError

        try:
            s3.head_bucket(Bucket=d.bucket)
        except ClientError as exc:
            if _error_code(exc)[0] not in ("404", "NoSuchBucket", "NotFound"):
                raise

            def create():
                kwargs = {} if self.region == "us-east-1" else {
                    "CreateBucketConfiguration": {"LocationConstraint": self.region}}
                s3.create_bucket(Bucket=d.bucket, **kwargs)
                s3.put_bucket_tagging(Bucket=d.bucket, Tagging=_tag_set(d.tags))

            return [_Op(Change("aws", "create", f"s3 bucket {d.bucket}", {"region": self.region, "tags": _tags(d.tags)}), create)]
        try:
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=d.bucket).get("TagSet", [])}
        except ClientError as exc:
            if _error_code(exc)[0] != "NoSuchTagSet":
                raise
            tags = {}
        differ = {k: v for k, v in d.tags.items() if tags.get(k) != v}
        if not differ:
            return []
        merged = {**tags, **d.tags}  # tags the platform does not manage stay
        return [_Op(
            Change("aws", "update", f"s3 bucket {d.bucket}", {"tags": _tags(differ), "was": _tags({k: tags.get(k) for k in differ})}),
            functools.partial(s3.put_bucket_tagging, Bucket=d.bucket, Tagging=_tag_set(merged)),
        )]

    def _database_arn(self, database: str) -> str:
        return f"arn:aws:glue:{self.region}:{self.account}:database/{database}"

    def _database_ops(self, glue, d: Domain) -> list[_Op]:
        try:
            current = glue.get_database(Name=d.database)["Database"]
        except glue.exceptions.EntityNotFoundException:
            database_input = {
                "Name": d.database,
                "Description": f"Data products of the {d.domain} domain (provisioned by the mesh platform).",
                "LocationUri": d.location,
                # Lake Formation alone governs new tables: no IAMAllowedPrincipals default grant.
                "CreateTableDefaultPermissions": [],
            }
            return [_Op(
                Change("aws", "create", f"glue database {d.database}", {"location": d.location, "tags": _tags(d.tags)}),
                functools.partial(glue.create_database, DatabaseInput=database_input, Tags=d.tags),
            )]
        ops = []
        if current.get("LocationUri") != d.location:
            database_input = {k: current[k] for k in ("Name", "Description", "Parameters", "CreateTableDefaultPermissions")
                              if k in current}
            ops.append(_Op(
                Change("aws", "update", f"glue database {d.database} location", {"location": d.location, "was": current.get("LocationUri")}),
                functools.partial(glue.update_database, Name=d.database, DatabaseInput={**database_input, "LocationUri": d.location}),
            ))
        arn = self._database_arn(d.database)
        tags = glue.get_tags(ResourceArn=arn).get("Tags", {})
        differ = {k: v for k, v in d.tags.items() if tags.get(k) != v}
        if differ:
            ops.append(_Op(
                Change("aws", "update", f"glue database {d.database} tags", {"tags": _tags(differ), "was": _tags({k: tags.get(k) for k in differ})}),
                functools.partial(glue.tag_resource, ResourceArn=arn, TagsToAdd=differ),
            ))
        return ops

    @staticmethod
    def _tables(glue, database: str) -> set[str]:
        names: set[str] = set()
        try:
            for page in glue.get_paginator("get_tables").paginate(DatabaseName=database):
                names.update(t["Name"] for t in page.get("TableList", []))
        except glue.exceptions.EntityNotFoundException:
            pass
        return names

    @staticmethod
    def _registered_locations(lf) -> set[str]:
        arns, token = set(), None
        while True:
            page = lf.list_resources(**({"NextToken": token} if token else {}))
            arns.update(r["ResourceArn"] for r in page.get("ResourceInfoList", []))
            token = page.get("NextToken")
            if not token:
                return arns


def _tags(tags: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in tags.items())


def _tag_set(tags: dict) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


# -- the reader's check ------------------------------------------------------------------------
def lake_formation_denial(table, consumer: str, contract: Contract | None = None) -> str | None:
    """Why Lake Formation would refuse `consumer` (a code location) a read of `table` (a Glue
    table, see places.Table); None when its principal holds SELECT on the table, or on every
    column its contract grant delivers in the clear (masked columns arrive hashed, excluded ones
    not at all, so those need no grant). `contract`: the producer's (default: the workspace's)."""
    settings = Settings.from_env()
    aws = settings.deployment.get("aws") or {}
    principal = (aws.get("principals") or {}).get(consumer)
    where = f"{table.namespace}.{table.name}"
    if principal is None:
        return (f"Lake Formation: code location '{consumer}' has no AWS principal in the {settings.env} deployment "
                f"file (aws.principals), so nothing grants it {where}")
    region = getattr(table.catalog, "region", None) or aws.get("region") or "us-east-1"
    lf = client("lakeformation", region)
    with clear_errors(region, f"checking Lake Formation permissions on {where}", service="lakeformation"):
        entries = list_permissions(lf)
    if contract is None:
        from mesh_platform.registry import product_contract

        contract = product_contract(table.key)
    everything = [c.name for c in contract.columns]
    full, columns = False, set()
    for e in entries:
        if e.get("Principal", {}).get("DataLakePrincipalIdentifier") not in (principal, IAM_ALLOWED_PRINCIPALS):
            continue
        if not {"SELECT", "ALL"} & set(e.get("Permissions") or []):
            continue
        resource = e.get("Resource", {})
        t = resource.get("Table") or resource.get("TableWithColumns")
        if not t or t.get("DatabaseName") != table.namespace:
            continue
        if "Table" in resource and ("TableWildcard" in t or t.get("Name") == table.name):
            full = True
        elif "TableWithColumns" in resource and t.get("Name") == table.name:
            excluded = set((t.get("ColumnWildcard") or {}).get("ExcludedColumnNames") or [])
            if "ColumnNames" in t:
                columns.update(t["ColumnNames"])
            elif not excluded:
                full = True
            else:
                columns.update(c for c in everything if c not in excluded)
    if full:
        return None
    who = f"{principal} (code location {consumer})"
    if not columns:
        return f"Lake Formation grants {who} no SELECT on table {where}"
    grant = next((g for g in contract.grants if g.reader == consumer), None)
    hidden = set(grant.mask) | set(grant.exclude) if grant else set()
    missing = sorted(c for c in everything if c not in hidden and c not in columns)
    if missing:
        return (f"Lake Formation grants {who} SELECT on columns {sorted(columns)} of table {where} only, "
                f"not on {missing}, which its contract grant delivers in the clear")
    return None

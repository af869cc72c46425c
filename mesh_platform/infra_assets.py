"""The prod environment's cloud infrastructure in the Dagster UI, in the platform's own code
location: one asset per cloud, `platform/infra/<cloud>`, whose materialization applies that
cloud's plan (mesh_platform.cloud.infra), and its asset check `drift`, which plans again and fails
listing every difference (a grant made or revoked outside the platform, a tag edited by hand).

Built over infra.CLOUDS: a cloud appears once its module (mesh_platform/cloud/<cloud>.py) is
installed; until then it is simply not defined (and says so in the platform job's description),
so a missing cloud never breaks the location's load. Nothing here exists in the dev environment.

The drift check is not blocking: nothing is built on top of the infrastructure asset, so blocking
would stop nothing but the asset's own run, and the remedy for drift is the apply it would stop.
It fails with ERROR severity and runs hourly on its own (`platform_infra_drift`), so drift shows
in the UI within the hour; grants still waiting for a table's first publish are listed in its
metadata, not counted as drift.
"""

import contextlib
from dataclasses import replace
from pathlib import Path

import dagster as dg

from mesh_platform.cloud import CloudError, infra
from mesh_platform.deployment import Settings
from mesh_platform.resource import MeshResource

PLATFORM_TEAM = "platform-team"
DRIFT_CHECK = "drift"
DRIFT_JOB = "platform_infra_drift"
DRIFT_SCHEDULE = "0 * * * *"  # hourly
# Dagster kinds with an icon, per cloud.
KINDS = {"aws": {"aws", "s3", "glue"}, "gcp": {"googlecloud", "bigquery"}, "azure": {"azure", "azure_data_lake_storage"}}


def infra_key(cloud: str) -> dg.AssetKey:
    return dg.AssetKey(["platform", "infra", cloud])


def _settings(mesh: MeshResource) -> Settings:
    """The run's settings, for the environment and home the location's resource names."""
    return replace(Settings.from_env(), env=mesh.env, home=Path(mesh.home))


def _waiting(provisioner) -> list[str]:
    waiting = getattr(provisioner, "waiting", None)
    return waiting() if callable(waiting) else []


@contextlib.contextmanager
def _clear(cloud: str):
    """A cloud that cannot be reached (the message names the endpoint) or a configuration error
    (it names the file) fails the step with that message alone."""
    try:
        yield
    except (CloudError, ValueError) as exc:
        raise dg.Failure(description=f"{cloud}: {exc}") from None


def infra_asset(cloud: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=infra_key(cloud),
        group_name="platform",
        owners=[f"team:{PLATFORM_TEAM}"],
        kinds=KINDS.get(cloud, {cloud}),
        description=(
            f"The {cloud} resources of the prod environment, derived from the product contracts and the "
            f"deployment file. Materializing applies `mesh infra plan --cloud {cloud}`: creates what is missing, "
            "grants what the contracts grant, revokes what they no longer do. The `drift` check shows what "
            "differs now."
        ),
    )
    def _infra(context: dg.AssetExecutionContext, mesh: MeshResource) -> dg.MaterializeResult:
        settings = _settings(mesh)
        with _clear(cloud):
            changes = infra.apply(settings, [cloud], actor="platform")
            for change in changes:
                context.log.info(str(change))
            waiting = _waiting(infra.provisioner(cloud, settings, infra.product_contracts()))
        return dg.MaterializeResult(metadata={
            "changed": len(changes),
            "changes": dg.MetadataValue.json([str(c) for c in changes]),
            "waiting": dg.MetadataValue.json(waiting),
        })

    return _infra


def drift_check(cloud: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=infra_key(cloud),
        name=DRIFT_CHECK,
        blocking=False,
        description=(
            f"Plans {cloud} again: passes when the cloud is what the contracts say, fails listing each "
            "difference (e.g. a grant made or revoked outside the platform). Materialize the asset to repair."
        ),
    )
    def _drift(mesh: MeshResource) -> dg.AssetCheckResult:
        settings = _settings(mesh)
        with _clear(cloud):
            provisioner = infra.provisioner(cloud, settings, infra.product_contracts())
            changes = provisioner.plan()
            waiting = _waiting(provisioner)
        return dg.AssetCheckResult(
            passed=not changes,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"{cloud} is as the contracts say" if not changes
                else f"{len(changes)} differences from the contracts: " + "; ".join(str(c) for c in changes)
            ),
            metadata={
                "changes": dg.MetadataValue.json([str(c) for c in changes]),
                "waiting": dg.MetadataValue.json(waiting),
            },
        )

    return _drift


def infra_definitions(env: str) -> dg.Definitions:
    """The infrastructure assets of every cloud, in prod only."""
    if env != "prod":
        return dg.Definitions()
    clouds = infra.CLOUDS
    assets = [infra_asset(c) for c in clouds]
    checks = [drift_check(c) for c in clouds]
    job = dg.define_asset_job(
        DRIFT_JOB,
        selection=dg.AssetSelection.checks(*checks),
        description=(
            f"The drift check of each cloud's infrastructure ({', '.join(clouds)})"
        ),
    )
    schedule = dg.ScheduleDefinition(
        name=f"{DRIFT_JOB}_hourly", job=job, cron_schedule=DRIFT_SCHEDULE, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=[job], schedules=[schedule])

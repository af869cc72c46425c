"""What the platform runs for the whole mesh, from its own code location: table maintenance
every day, the monitor that fails runs whose worker died, and in prod the clouds'
infrastructure with its drift check (mesh_platform.infra_assets)."""

from datetime import timedelta

import dagster as dg

from mesh_platform import maintenance
from mesh_platform.resource import MeshResource
from mesh_platform.runs import run_monitor

MAINTENANCE_SCHEDULE = "0 3 * * *"  # after the domains' 02:00 refresh


class MaintenanceConfig(dg.Config):
    keep_versions: int = maintenance.KEEP_VERSIONS
    min_age_hours: float = maintenance.MIN_AGE.total_seconds() / 3600
    orphan_age_hours: float = maintenance.ORPHAN_AGE.total_seconds() / 3600


@dg.op(description="Expire old snapshots of every product and remove orphan files; reports what it removed.")
def maintain_tables(context: dg.OpExecutionContext, config: MaintenanceConfig, mesh: MeshResource) -> None:
    from pathlib import Path

    from mesh_platform.cloud.infra import product_contracts

    report = maintenance.maintain_all(
        Path(mesh.home), mesh.env, product_contracts(), catalog_url=mesh.catalog_url or None,
        keep_versions=config.keep_versions,
        min_age=timedelta(hours=config.min_age_hours), orphan_age=timedelta(hours=config.orphan_age_hours),
    )
    maintenance.audit(mesh.audit_log(), report, actor="platform", run_id=context.run_id)
    context.log.info(report.summary())
    context.add_output_metadata({
        "removed_files": report.removed_files,
        "report": dg.MetadataValue.md("```\n" + report.summary() + "\n```"),
    }, output_name="result")


@dg.job(name="mesh_maintenance", description="Iceberg table maintenance for every product of the mesh.")
def maintenance_job():
    maintain_tables()


def platform_definitions() -> dg.Definitions:
    from mesh_platform.deployment import Settings
    from mesh_platform.infra_assets import infra_definitions

    return dg.Definitions.merge(infra_definitions(Settings.from_env().env), dg.Definitions(
        jobs=[maintenance_job],
        schedules=[dg.ScheduleDefinition(
            name="mesh_maintenance_daily", job=maintenance_job, cron_schedule=MAINTENANCE_SCHEDULE,
            execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
        )],
        sensors=[run_monitor],
    ))

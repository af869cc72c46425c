"""`make dev-cloud` (`python -m mesh_platform.devcloud`): the prod environment on this machine.

1. Starts the local stand-in of every cloud the prod deployment file names (moto for AWS, the
   BigQuery emulator for GCP, Azurite for Azure) on 127.0.0.1, and prints the standard settings
   that point any tool at them, each on a line of its own (AWS_ENDPOINT_URL=..., ...).
2. With MESH_ENV=prod against them, in a fresh home (MESH_HOME/dev-cloud: the emulators start
   empty, so does it): `mesh infra apply`, `mesh seed`, `mesh materialize` of every location whose
   products' clouds have their module installed, and `mesh status`.
3. Opens the Dagster UI like `make dev` and keeps it up until Ctrl-C (or SIGTERM), which stops the
   UI and every emulator it started.

A cloud whose emulator does not start (AWS excepted: every domain lives there) is left out: the
locations whose products live there are not materialized, and it says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from mesh_platform.deployment import Settings, deployment_file

ENV = "prod"
# Which cloud serves each server type of a contract.
SERVER_CLOUDS = {"glue": "aws", "bigquery": "gcp", "azure": "azure"}
UI_STOP_GRACE = 30.0


def _say(message: str) -> None:
    print(f"dev-cloud: {message}", flush=True)


def clouds_in_use(deployment: dict) -> list[str]:
    """The clouds the prod deployment file configures, in the emulators' order."""
    from mesh_platform.emulators import CLOUD_EMULATORS

    return [c for c in CLOUD_EMULATORS if c in deployment]


def location_clouds() -> dict[str, set[str]]:
    """Each code location and the clouds its products live on in prod."""
    from mesh_platform.location import location_contracts
    from mesh_platform.workspace import locations

    out = {}
    for name, loc in locations().items():
        contracts = location_contracts(loc.path.parent).values()
        out[name] = {SERVER_CLOUDS.get(c.server(ENV).type, c.server(ENV).type) for c in contracts}
    return out


def _emulator(cloud: str, state: Path, deployment: dict):
    from mesh_platform.emulators import CLOUD_EMULATORS

    cls = CLOUD_EMULATORS[cloud]
    if cloud == "gcp":
        return cls(state_dir=state / cloud, project=deployment["gcp"]["project"])
    if cloud == "aws":
        return cls(state_dir=state / cloud, region=deployment["aws"]["region"])
    return cls(state_dir=state / cloud)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the session as Ctrl-C does."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _run(step: list[str], env: dict[str, str], mesh: str) -> None:
    _say(f"$ mesh {' '.join(step)}")
    code = subprocess.call([mesh, *step], env=env)
    if code != 0:
        raise SystemExit(f"dev-cloud: `mesh {' '.join(step)}` failed (exit {code}); stopping")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesh_platform.devcloud", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--home", type=Path, help="the prod environment's home (default: MESH_HOME/dev-cloud, "
                        "emptied at start: the emulators start empty too)")
    args = parser.parse_args(argv)

    from mesh_platform.emulators import EmulatorError
    from mesh_platform.emulators._process import _child_setup, stop_group

    _stop_on_signals()
    base = Settings.from_env()
    home = (args.home or base.home / "dev-cloud").resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    deployment = deployment_file(ENV)
    mesh = str(Path(sys.executable).with_name("mesh"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MESH_SOURCE_"))}
    env |= {"MESH_ENV": ENV, "MESH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("MESH_LANDING", None)

    services, ui, arm = {}, None, None
    try:
        for cloud in clouds_in_use(deployment):
            service = _emulator(cloud, home / "emulators", deployment)
            try:
                service.start()
            except EmulatorError as exc:
                if cloud == "aws":
                    raise SystemExit(f"dev-cloud: the AWS emulator did not start: {exc}") from None
                _say(f"{cloud}: its emulator did not start, going on without it: {str(exc).splitlines()[0]}")
                continue
            services[cloud] = service
            _say(f"{cloud}: {type(service).__name__} on 127.0.0.1:{service.port} ({service.start_seconds:.1f} s)")
        settings = {k: v for s in services.values() for k, v in s.env().items()}
        if "azure" in services:  # the Synapse workspace and its resource group
            from mesh_platform.emulators.fake_arm import FakeArm

            arm = FakeArm().start()
            settings["AZURE_RESOURCE_MANAGER_URL"] = arm.url
            _say(f"azure: Azure Resource Manager is a FAKE on {arm.url} (nothing emulates ARM or Synapse; "
                 "see mesh_platform/emulators/fake_arm.py)")
        env |= settings
        print("\n# The emulated clouds; point your own tools at them with:", flush=True)
        for key, value in settings.items():
            print(f"{key}={value}", flush=True)
        print(flush=True)

        provisioned = list(services)
        ready = set(provisioned) | {"local"}
        runnable, skipped = [], []
        for location, clouds in location_clouds().items():
            (runnable if clouds <= ready else skipped).append(location)
        for location in skipped:
            _say(f"{location}: not materialized (its products live on "
                 f"{', '.join(sorted(location_clouds()[location] - ready))}, whose emulator did not start)")

        infra_args = [a for c in provisioned for a in ("--cloud", c)]
        if provisioned:
            _run(["infra", "apply", *infra_args], env, mesh)
        _run(["seed", "--customers", str(args.customers)], env, mesh)
        if runnable:
            _run(["materialize", *runnable], env, mesh)
        _run(["status"], env, mesh)

        print("\n# The emulated clouds (again):", flush=True)
        for key, value in settings.items():
            print(f"{key}={value}", flush=True)
        _say(f"MESH_ENV={ENV} MESH_HOME={home}; Ctrl-C stops the UI and the emulators")
        # Its own session: Ctrl-C reaches us, and we stop the UI's whole process group.
        ui = subprocess.Popen([mesh, "ui", "--port", str(args.port)], env=env, start_new_session=True,
                              preexec_fn=_child_setup(os.getpid()))
        code = ui.wait()
        ui = None
        _say(f"the UI exited ({code})")
        return code
    except KeyboardInterrupt:
        print(flush=True)
        _say("stopping")
        return 130
    finally:
        # Ctrl-C twice must not leave servers behind: stop without being interrupted again.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if ui is not None:
            stop_group(ui, UI_STOP_GRACE)
        for cloud, service in services.items():
            try:
                service.stop()
            except EmulatorError as exc:
                _say(f"stopping {cloud}: {exc}")
        if arm is not None:
            arm.stop()
        _say("stopped the UI and the emulators")


if __name__ == "__main__":
    sys.exit(main())

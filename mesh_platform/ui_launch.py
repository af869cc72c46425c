"""The Dagster UI that `mesh ui` runs for a mesh home, and launching runs through it.

`mesh ui` announces its UI in DAGSTER_HOME/ui.json (its port and the pid of its `dagster dev`).
While that UI is up, `mesh materialize` launches its runs through the UI's GraphQL API (its
`launchRun` mutation), as the UI's Materialize button does: the location's code server creates the run, with the location as
its origin (the Overview timeline places runs by it, and leaves out runs without one), and the
UI's queue and run launcher execute it. Dagster's public entry points for executing a run in
one's own process (`execute_job`) create runs without an origin, so without a UI `mesh`
executes its runs itself: the job pages list them, the timeline does not.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

ANNOUNCEMENT = "ui.json"
LOADING_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message } } }
"""
TERMINATE_RUN = "mutation Terminate($runId: String!) { terminateRun(runId: $runId) { __typename } }"


class LaunchError(Exception):
    """The UI did not launch the run (its location failed to load, say): the UI's own reason."""


@dataclass(frozen=True)
class RunningUI:
    port: int
    pid: int  # `dagster dev`'s

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run_url(self, run_id: str) -> str:
        return f"{self.url}/runs/{run_id}"

    def answers(self, timeout: float = 2) -> bool:
        import requests  # 0.09 s: only a refresh with a UI running needs it

        try:
            r = requests.post(f"{self.url}/graphql", json={"query": "{ version }"}, timeout=timeout)
            return r.status_code == 200 and "data" in r.json()
        except (requests.RequestException, ValueError):
            return False

    def wait_until_loaded(self, timeout: float = 300) -> None:
        """Until no code location is still loading (the UI answers before its locations load)."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = requests.post(f"{self.url}/graphql", json={"query": LOADING_QUERY}, timeout=30)
                entries = (r.json().get("data") or {}).get("workspaceOrError", {}).get("locationEntries")
            except (requests.RequestException, ValueError):
                entries = None  # restarting, say: a launch that then fails says why
            if entries is not None and all(e["loadStatus"] == "LOADED" for e in entries):
                return
            time.sleep(0.5)

    def launch(self, location: str, keys: list | None = None, tags: dict[str, str] | None = None,
               job: str | None = None) -> str:
        """A run of the location's `job` (default `<location>_products`), of `keys` (with their
        checks) or all of it, as the UI submits one: queued, launched by the daemon. Its id."""
        from mesh_platform.runs import REPOSITORY

        selector = {"repositoryLocationName": location, "repositoryName": REPOSITORY,
                    "jobName": job or f"{location}_products"}
        if keys is not None:
            selector["assetSelection"] = [{"path": list(k.path)} for k in keys]
        params = {"selector": selector, "runConfigData": {},
                  "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}}
        result = self._mutate(LAUNCH_RUN, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            detail = {k: v for k, v in result.items() if k != "__typename"}
            raise LaunchError(f"the UI on {self.url} did not launch the run: {result['__typename']} {detail}")
        return result["run"]["runId"]

    def terminate(self, run_id: str) -> None:
        self._mutate(TERMINATE_RUN, {"runId": run_id})

    def _mutate(self, query: str, variables: dict) -> dict:
        import requests

        try:
            r = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
            body = r.json()
        except (requests.RequestException, ValueError) as exc:
            raise LaunchError(f"the UI on {self.url} did not answer: {exc}") from None
        if "errors" in body:
            raise LaunchError(f"the UI on {self.url} refused the request: {body['errors']}")
        return body["data"]


def announce(dagster_home: Path, ui: RunningUI) -> None:
    path = dagster_home / ANNOUNCEMENT
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"port": ui.port, "pid": ui.pid}))
    tmp.replace(path)


def withdraw(dagster_home: Path, ui: RunningUI) -> None:
    """Remove the announcement, if it is still this UI's (another `mesh ui` may have replaced it)."""
    if running_ui(dagster_home, check=False) == ui:
        (dagster_home / ANNOUNCEMENT).unlink(missing_ok=True)


def running_ui(dagster_home: Path, check: bool = True) -> RunningUI | None:
    """The UI announced in `dagster_home`, if its process is alive and (with `check`) it answers.
    An announcement left by a UI that was killed is ignored."""
    try:
        data = json.loads((dagster_home / ANNOUNCEMENT).read_text())
        ui = RunningUI(int(data["port"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not check:
        return ui
    try:
        os.kill(ui.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's: answers() decides
    return ui if ui.answers() else None

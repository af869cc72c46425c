"""A FAKE Azure Resource Manager endpoint, for the tests and `make dev-cloud` only: a small HTTP
server on loopback that
answers the few ARM calls the platform makes (resource groups, Synapse workspaces) the way ARM
documents them, and records every request.

It is not Azure and verifies nothing about Azure: it has no authentication, no RBAC, no
resource-provider registration, no quotas, no validation beyond what is written below, and it
never creates a real workspace or identity. What it lets a test check is the real SDK's side:
azure-mgmt-resource and azure-mgmt-synapse serialising the request bodies, the URLs and
api-versions they call, and the long-running-operation protocol (PUT or PATCH answered with an
Azure-AsyncOperation header, polled while InProgress, then the resource read back). Nothing
emulates Synapse or ARM (see /work/shared/STACK-NOTES.md), hence this fake.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_RG = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)$", re.IGNORECASE)
_WS = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.synapse/workspaces/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_OP = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.synapse/locations/[^/]+/operationstatuses/(?P<op>[^/]+)$",
                 re.IGNORECASE)
TENANT = "33333333-3333-3333-3333-333333333333"
POLLS_IN_PROGRESS = 1  # each operation answers InProgress this many times, then Succeeded


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict | None


class FakeArm:
    def __init__(self):
        self.requests: list[Request] = []
        self.resources: dict[str, dict] = {}  # lower-cased resource id -> its ARM body
        self.operations: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> FakeArm:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.resources.clear()
            self.operations.clear()

    def forget_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def calls(self, method: str | None = None, contains: str = "") -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method) and contains.lower() in r.path.lower()]

    def put_resource(self, resource_id: str, body: dict) -> None:
        """Make a resource exist as if someone else had created it."""
        self.resources[resource_id.lower()] = {"id": resource_id, **body}

    # -- what ARM answers ------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], body: dict | None) -> tuple[int, dict | None, dict]:
        if "api-version" not in query:
            return 400, _error("MissingApiVersionParameter", "The api-version query parameter is required."), {}
        if m := _OP.match(path):
            return self._operation(m["op"])
        if m := _RG.match(path):
            return self._resource_group(method, path, m, body)
        if m := _WS.match(path):
            return self._workspace(method, path, m, body)
        return 404, _error("NotFoundInFake", f"the fake ARM endpoint does not serve {method} {path}"), {}

    def _resource_group(self, method, path, m, body):
        key = path.lower()
        have = self.resources.get(key)
        if method in ("GET", "HEAD"):
            if have is None:
                return 404, _error("ResourceGroupNotFound", f"Resource group '{m['rg']}' could not be found."), {}
            return (204 if method == "HEAD" else 200), (None if method == "HEAD" else have), {}
        if method == "PUT":
            if not body or not body.get("location"):
                return 400, _error("LocationRequired", "The location property is required for this definition."), {}
            self.resources[key] = {
                "id": f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}", "name": m["rg"],
                "type": "Microsoft.Resources/resourceGroups", "location": body["location"],
                "tags": body.get("tags") or {}, "properties": {"provisioningState": "Succeeded"},
            }
            return (200 if have else 201), self.resources[key], {}
        return 405, _error("MethodNotAllowed", method), {}

    def _workspace(self, method, path, m, body):
        key = path.lower()
        have = self.resources.get(key)
        rg_id = f"/subscriptions/{m['sub']}/resourcegroups/{m['rg']}"
        if method == "GET":
            if have is None:
                return 404, _error("ResourceNotFound", f"The Resource 'Microsoft.Synapse/workspaces/{m['name']}' "
                                   f"under resource group '{m['rg']}' was not found."), {}
            return 200, have, {}
        if rg_id not in self.resources:
            return 404, _error("ResourceGroupNotFound", f"Resource group '{m['rg']}' could not be found."), {}
        if method == "PUT":
            if not body or not body.get("location"):
                return 400, _error("LocationRequired", "The location property is required for this definition."), {}
            identity = dict(body.get("identity") or {})
            if "SystemAssigned" in identity.get("type", ""):  # ARM assigns the identity's ids
                identity |= {"principalId": str(uuid.uuid4()), "tenantId": TENANT}
            resource = {
                "id": f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/Microsoft.Synapse/workspaces/{m['name']}",
                "name": m["name"], "type": "Microsoft.Synapse/workspaces", "location": body["location"],
                "tags": body.get("tags") or {}, "identity": identity,
                "properties": {**(body.get("properties") or {}), "provisioningState": "Provisioning",
                               "workspaceUID": str(uuid.uuid4())},
            }
            self.resources[key] = resource
            return (200 if have else 201), resource, self._start_operation(m, key)
        if method == "PATCH":
            if have is None:
                return 404, _error("ResourceNotFound", f"workspace {m['name']} not found"), {}
            if "tags" in (body or {}):
                have["tags"] = body["tags"] or {}
            if (body or {}).get("identity"):
                identity = dict(body["identity"])
                if "SystemAssigned" in identity.get("type", "") and not have.get("identity", {}).get("principalId"):
                    identity |= {"principalId": str(uuid.uuid4()), "tenantId": TENANT}
                have["identity"] = {**have.get("identity", {}), **identity}
            have["properties"]["provisioningState"] = "Updating"
            return 200, have, self._start_operation(m, key)
        return 405, _error("MethodNotAllowed", method), {}

    def _start_operation(self, m, key: str) -> dict:
        op = str(uuid.uuid4())
        self.operations[op] = {"polls": 0, "resource": key}
        location = self.resources[key]["location"]
        url = (f"{self.url}/subscriptions/{m['sub']}/providers/Microsoft.Synapse/locations/{location}"
               f"/operationStatuses/{op}?api-version=2021-03-01")
        # Not "0": azure-core reads a zero Retry-After as none and waits its default 30 s a poll.
        return {"Azure-AsyncOperation": url, "Retry-After": "1"}

    def _operation(self, op_id: str):
        op = self.operations.get(op_id)
        if op is None:
            return 404, _error("OperationNotFound", op_id), {}
        op["polls"] += 1
        if op["polls"] <= POLLS_IN_PROGRESS:
            return 200, {"id": op_id, "name": op_id, "status": "InProgress"}, {"Retry-After": "1"}
        self.resources[op["resource"]]["properties"]["provisioningState"] = "Succeeded"
        return 200, {"id": op_id, "name": op_id, "status": "Succeeded"}, {}


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _handler(fake: FakeArm):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self):
            parsed = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with fake.lock:
                fake.requests.append(Request(self.command, parsed.path, query, body))
                status, answer, headers = fake.handle(self.command, parsed.path, query, body)
            data = b"" if answer is None or self.command == "HEAD" else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if data:
                self.wfile.write(data)

        do_GET = do_PUT = do_PATCH = do_HEAD = do_DELETE = _serve

        def log_message(self, *args):  # quiet
            pass

    return Handler

"""A real HTTP relay on loopback in front of the moto server that goes down on cue: the AWS
endpoint disappearing mid-way through a publish, exactly at the request a test names.

Every request is forwarded to moto as received; the first request `cut_when(method, path,
headers)` matches, and every request after it, gets its connection closed without an answer
(as a crashed endpoint behind a load balancer). Moto keeps its state, so a test can look at what
the interrupted publish left once it talks to moto directly again.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class CutRelay:
    def __init__(self, target: str, cut_when: Callable[[str, str, dict[str, str]], bool]):
        self.target = urlsplit(target)
        self.cut_when = cut_when
        self.down = threading.Event()
        self.cut_request: str | None = None
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _relay(self) -> None:
                headers = {k: v for k, v in self.headers.items()}
                if not relay.down.is_set() and relay.cut_when(self.command, self.path, headers):
                    relay.cut_request = f"{self.command} {self.path} {headers.get('X-Amz-Target', '')}".strip()
                    relay.down.set()
                if relay.down.is_set():
                    self.close_connection = True  # no answer at all
                    return
                body = self._body()
                upstream = http.client.HTTPConnection(relay.target.hostname, relay.target.port, timeout=60)
                try:
                    forward = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
                    if body or "Content-Length" in headers or "Transfer-Encoding" in headers:
                        forward["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=forward)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response_only(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(payload))
                    self.send_header("Content-Length", length or "0")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> CutRelay:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A real threaded HTTP/1.1 server on 127.0.0.1 (random port) for zoo tests.

Routes map a URL path to a list of scripted responses, used in turn (the last one repeats),
so "500 then the file" is ``server.route("/f", Status(500), Serve(data))``. Every request is
recorded (method, path, headers) so tests can count them and check e.g. the ``Range`` header.

    def test_x(http_server):
        http_server.route("/m.tar", Serve(data))
        path = download(http_server.url("/m.tar"), progress=False)
        assert http_server.count("/m.tar") == 1

The ``http_server`` fixture starts one per test and stops it afterwards; ``stop()`` may also be
called inside a test (later connections are refused).
"""

from __future__ import annotations

import dataclasses
import http.server
import re
import socket
import threading
from collections.abc import Callable

import pytest


@dataclasses.dataclass
class Serve:
    """The file, honouring ``Range: bytes=N-[M]`` with 206 (or 416) when ``ranges``.

    ``chunk``/``delay``: send ``chunk`` bytes then sleep ``delay`` s (a slow link).
    ``gate``: called once before the body is sent (e.g. to wait for another process).
    """

    data: bytes
    content_type: str = "application/octet-stream"
    ranges: bool = True
    chunk: int = 1 << 16
    delay: float = 0.0
    gate: Callable[[], None] | None = None


@dataclasses.dataclass
class Status:
    """A bare status with optional headers and body (e.g. ``Status(429, {"Retry-After": "0"})``)."""

    code: int
    headers: dict = dataclasses.field(default_factory=dict)
    body: bytes = b""


@dataclasses.dataclass
class Redirect:
    location: str  # a path on this server or an absolute URL
    code: int = 302


@dataclasses.dataclass
class Drop:
    """Announce the whole file (200, full Content-Length), send ``after`` bytes, then hang up."""

    data: bytes
    after: int


@dataclasses.dataclass
class Stall:
    """Send the headers, then wait ``delay`` s before the body (to trip a read timeout)."""

    data: bytes
    delay: float


@dataclasses.dataclass
class Silent:
    """Accept the request and send nothing at all for ``delay`` s (a server that hangs)."""

    delay: float = 60.0


Response = Serve | Status | Redirect | Drop | Stall | Silent


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict  # lower-case header name -> value


class HttpServer:
    """Threaded server with scripted routes; unknown paths get 404."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._routes: dict[str, list[Response]] = {}
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._running = False

    def start(self) -> HttpServer:
        self._thread.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Stop serving and close the port (idempotent); slow responses are cut short."""
        self.stopping.set()
        if self._running:
            self._running = False
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(5)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, *responses: Response) -> str:
        """Script the responses for ``path`` (used in order, the last repeats); return its URL."""
        with self._lock:
            self._routes[path] = list(responses)
            self._served[path] = 0
        return self.url(path)

    def requests_for(self, path: str, method: str = "GET") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path and r.method == method]

    def count(self, path: str | None = None, method: str = "GET") -> int:
        """How many ``method`` requests reached ``path`` (any path when None)."""
        with self._lock:
            return sum(
                1 for r in self.requests if r.method == method and (path is None or r.path == path)
            )

    def _next(self, method: str, path: str, headers: dict) -> Response | None:
        with self._lock:
            self.requests.append(Request(method, path, headers))
            script = self._routes.get(path)
            if not script:
                return None
            i = self._served[path]
            self._served[path] = i + 1
            return script[min(i, len(script) - 1)]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # clients hanging up are normal
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end by themselves
    owner: HttpServer

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _respond(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = self.owner._next(self.command, path, headers)
        try:
            if resp is None:
                self._status(404, {}, b"not found", body)
            elif isinstance(resp, Status):
                self._status(resp.code, resp.headers, resp.body, body)
            elif isinstance(resp, Redirect):
                loc = resp.location
                if loc.startswith("/"):
                    loc = self.owner.url(loc)
                self._status(resp.code, {"Location": loc}, b"", body)
            elif isinstance(resp, Serve):
                self._serve(resp, headers.get("range"), body)
            elif isinstance(resp, Drop):
                self._head(200, {"Content-Length": str(len(resp.data))})
                if body:
                    self.wfile.write(resp.data[: resp.after])
                    self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif isinstance(resp, Silent):
                self.owner.stopping.wait(resp.delay)
                self.close_connection = True
            elif isinstance(resp, Stall):
                self._head(200, {"Content-Length": str(len(resp.data))})
                self.wfile.flush()
                if self.owner.stopping.wait(resp.delay):
                    self.close_connection = True
                    return
                if body:
                    self.wfile.write(resp.data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _head(self, code: int, headers: dict) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _status(self, code: int, headers: dict, data: bytes, body: bool) -> None:
        self._head(code, {"Content-Length": str(len(data)), **headers})
        if body:
            self.wfile.write(data)

    def _serve(self, resp: Serve, range_header: str | None, body: bool) -> None:
        data, n = resp.data, len(resp.data)
        start, end = 0, n - 1
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
        if resp.ranges and m:
            start = int(m.group(1))
            end = min(int(m.group(2)), n - 1) if m.group(2) else n - 1
            if start >= n:
                self._status(416, {"Content-Range": f"bytes */{n}"}, b"", body)
                return
            self._head(
                206,
                {
                    "Content-Type": resp.content_type,
                    "Accept-Ranges": "bytes",
                    "Content-Range": f"bytes {start}-{end}/{n}",
                    "Content-Length": str(end - start + 1),
                },
            )
        else:
            self._head(
                200,
                {
                    "Content-Type": resp.content_type,
                    "Content-Length": str(n),
                    **({"Accept-Ranges": "bytes"} if resp.ranges else {}),
                },
            )
        if not body:
            return
        self.wfile.flush()
        if resp.gate is not None:
            resp.gate()
        pos = start
        while pos <= end:
            step = min(resp.chunk, end + 1 - pos)
            self.wfile.write(data[pos : pos + step])
            self.wfile.flush()
            pos += step
            if resp.delay and pos <= end and self.owner.stopping.wait(resp.delay):
                self.close_connection = True
                return


@pytest.fixture
def http_server():
    """A started :class:`HttpServer`, stopped after the test."""
    server = HttpServer().start()
    try:
        yield server
    finally:
        server.stop()

"""Fault injection for the crash-safety tests.

- `FaultyProxy`: an HTTP proxy in front of a real server that forwards every call but one REST
  route, which it refuses (403), fails (503) or leaves hanging (bounded).
- `blocking_train`: a custom training function (`train: faults:blocking_train`) that says it
  started, then blocks, so a test can kill the run while its trials are in flight.
- Run as a script, the `shipyard` CLI with one fault patched in:
  `python faults.py FAULT [ARG] -- <shipyard arguments>`, where FAULT is
  `kill-at-alias` (SIGKILL itself where the registry would set the new version's alias) or
  `kill-server-after-register PID_FILE` (SIGKILL the Prefect server's process group right after
  the model version was registered).
- `wait_for`: a bounded poll.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
MARKER_ENV = "SHIPYARD_FAULT_MARKER"
"""blocking_train writes its pid to this file when training starts."""
BLOCK_SECONDS = 120.0
HANG_SECONDS = 30.0
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


# --- the proxy ------------------------------------------------------------------------------


class FaultyProxy:
    """Forwards every request to `upstream`, except requests to `path` while `fault` is set:
    "403" and "503" answer that status like a gateway would (plain text), "hang" answers
    nothing until the proxy closes or HANG_SECONDS pass."""

    def __init__(self, upstream: str, path: str, fault: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.path = path
        self.fault = fault
        self.faulted = 0
        self.seen: list[str] = []
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _answer(self) -> None:
                route = urlsplit(self.path).path
                proxy.seen.append(f"{self.command} {route}")
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.fault and route == proxy.path:
                    proxy.faulted += 1
                    if proxy.fault == "hang":
                        proxy._release.wait(HANG_SECONDS)
                        self.close_connection = True
                        return
                    self._reply(int(proxy.fault), {}, f"{proxy.fault} from the proxy\n".encode())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command, headers=headers
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        self._reply(response.status, dict(response.headers), response.read())
                except urllib.error.HTTPError as error:
                    self._reply(error.code, dict(error.headers), error.read())

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

        return Handler


# --- a training that blocks -----------------------------------------------------------------


def blocking_train(x: Any, y: Any, params: dict[str, Any], seed: int) -> Any:
    """With $SHIPYARD_FAULT_MARKER set: writes this process's pid there, then blocks (bounded)
    while the test kills the process. Without it: a plain logistic regression."""
    marker = os.environ.get(MARKER_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))
        threading.Event().wait(BLOCK_SECONDS)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(random_state=seed).fit(x.select_dtypes("number"), y)


# --- the CLI with a fault patched in ----------------------------------------------------------


def _kill_at_alias() -> None:
    from mlflow import MlflowClient

    def killed(self: Any, name: str, alias: str, version: str) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    MlflowClient.set_registered_model_alias = killed  # type: ignore[method-assign]


def _kill_server_after_register(pid_file: str) -> None:
    from shipyard import registry

    real = registry.register

    def register(*args: Any, **kwargs: Any) -> Any:
        registered = real(*args, **kwargs)
        pid = int(Path(pid_file).read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the server leads its own session
        wait_for(lambda: process_gone(pid), "the Prefect server to die", timeout=30)
        return registered

    registry.register = register  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    fault, rest = argv[0], argv[1:]
    separator = rest.index("--")
    fault_args, cli_args = rest[:separator], rest[separator + 1 :]
    if fault == "kill-at-alias":
        _kill_at_alias()
    elif fault == "kill-server-after-register":
        _kill_server_after_register(*fault_args)
    else:
        raise SystemExit(f"unknown fault {fault!r}")
    from shipyard.cli import main as shipyard

    return shipyard(cli_args)


@contextlib.contextmanager
def killed_at_exit(process: Any) -> Iterator[Any]:
    """Yield a started subprocess.Popen; SIGKILL and reap it on the way out if it still runs."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

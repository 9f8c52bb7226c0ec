"""Background processes Shipyard starts (Prefect server, worker): pid files, logs, health."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from shipyard import progress
from shipyard.errors import ServiceUnavailable

MARKER = "SHIPYARD_MANAGED"
"""Environment variable naming the pid file of the ManagedProcess a process descends from.

Every descendant inherits it, also those that leave the process group or session (BentoML's
workers call setsid) or outlive their parent, so stop() (with whole_tree) finds them all."""


def http_ok(url: str, timeout: float = 2.0, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(
            url, timeout=timeout, context=context
        ) as response:  # http(s) health URL of a process Shipyard started  # nosec B310
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    """True while the process runs; a child that exited (a zombie until reaped) is not alive."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel instead
    return running(pid)


def running(pid: int) -> bool:
    """True while process `pid` runs, whoever its parent is; a zombie (exited, not yet reaped
    by its parent) does not run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    return fields is None or fields[0] != "Z"


def started_at(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), from /proc; None where that is unknown."""
    fields = _stat(pid)
    if fields is None:
        return None
    try:
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pids() -> list[int]:
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is `pid`."""
    found = []
    for child in _pids():
        fields = _stat(child)
        if fields and fields[0] != "Z" and int(fields[1]) == pid:
            found.append(child)
    return sorted(found)


def _marked(value: bytes) -> list[int]:
    """The live processes whose environment has MARKER=`value`, this one excepted."""
    wanted = MARKER.encode() + b"=" + value
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if wanted in environ and (fields := _stat(pid)) and fields[0] != "Z":
            found.append(pid)
    return sorted(found)


class ManagedProcess:
    """A named background process with its pid file and log file under the state folder.

    With `whole_tree`, stop() also ends every process it started that left its process group
    or outlived it (BentoML's workers call setsid). Without, stop() ends its process group, and
    processes it detached on purpose (a Prefect worker's flow runs) go on.
    """

    def __init__(self, name: str, run_dir: Path, log_dir: Path, whole_tree: bool = False) -> None:
        self.name = name
        self.whole_tree = whole_tree
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_dir / f"{name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                env={**env, MARKER: str(self.pid_file)},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        return process.pid

    def members(self) -> list[int]:
        """With `whole_tree`, every live process started through this pid file: the process
        and all it started; else none (stop() then ends the process group alone)."""
        return _marked(str(self.pid_file).encode()) if self.whole_tree else []

    def descendants(self) -> list[int]:
        """Every live process started through this pid file, `whole_tree` or not."""
        return _marked(str(self.pid_file).encode())

    def log_size(self) -> int:
        """The log's length in bytes now: where the lines of what follows begin."""
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        """The log from `offset` on."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_until(
        self,
        healthy: str,
        timeout: float,
        context: ssl.SSLContext | None = None,
        failed: Callable[[], str | None] | None = None,
        ready: Callable[[], bool] | None = None,
        port_taken_hint: str | None = None,
    ) -> None:
        """Poll a health URL until it answers (or `ready()` is true, for a process without one).

        Gives up when the process exits, when `failed` returns a reason (e.g. a worker that
        exited), or after `timeout` seconds; then stops the process and everything it started
        and raises with the reason and the log's tail (and `port_taken_hint` when the log says
        the port is in use).
        """
        deadline = time.monotonic() + timeout
        reason = f"not healthy after {timeout:.0f} s"
        with progress.step(f"starting {self.name}") as shown:
            shown.note(f"log: {self.log_file}")
            while time.monotonic() < deadline:
                if ready() if ready is not None else http_ok(healthy, context=context):
                    return
                if self.pid() is None:
                    reason = "it exited"
                    break
                if failed is not None and (why := failed()) is not None:
                    reason = why
                    break
                time.sleep(0.5)
            shown.fail(reason)
        tail = self.log_tail()
        self.stop(timeout=10.0)
        in_use = "address already in use" in tail.lower()
        raise ServiceUnavailable(
            f"{self.name} did not become healthy at {healthy}: {reason}; it was stopped. "
            f"The end of its log:\n{tail}",
            hint=(
                port_taken_hint
                or f"another program uses the port; stop it or choose another (see {self.log_file})"
            )
            if in_use
            else f"see {self.log_file}",
        )

    def log_tail(self, lines: int = 15, width: int = 400) -> str:
        """The log's last lines, each cut to `width` characters (a traceback logged as one
        JSON line runs to kilobytes)."""
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(
            "    " + (line if len(line) <= width else line[:width] + " ...")
            for line in text[-lines:]
        )

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the process group, then SIGKILL whatever lingers (with `whole_tree`, every
        process it started included); False if nothing was running."""
        pid = self.pid()
        if pid is None and not self.members():
            self.pid_file.unlink(missing_ok=True)
            return False
        if pid is not None:  # its process group: the leader stops its workers in order
            _send(os.killpg, pid, signal.SIGTERM)
        else:  # the leader is gone: what it left behind
            for member in self.members():
                _send(os.kill, member, signal.SIGTERM)
        if not self._ended(pid, timeout):
            if pid is not None:
                _send(os.killpg, pid, signal.SIGKILL)
            for member in self.members():
                _send(os.kill, member, signal.SIGKILL)
            self._ended(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _ended(self, pid: int | None, timeout: float) -> bool:
        """Wait until the leader and every member are gone; False if some remain."""
        deadline = time.monotonic() + timeout
        while True:
            if (pid is None or not _alive(pid)) and not self.members():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def _send(kill: Callable[[int, int], None], pid: int, sig: int) -> None:
    try:
        kill(pid, sig)
    except ProcessLookupError:  # it ended meanwhile
        return


def process_owner() -> str:
    """This process, as "host:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(owner: str, since: float | None = None) -> bool:
    """True when the process `owner` ("host:pid") names is certainly gone: it ran on this host,
    and its pid runs no more or now belongs to a process started after `since` (the epoch
    seconds when its run began; pids are reused). A process on another host may be alive."""
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if not running(pid):
        return True
    began = started_at(pid)
    return since is not None and began is not None and began > since + 1.0

"""Who answers on a local port: so that a project never takes another project's server for its own.

Two projects on one machine may both ask for port 4200. A server Shipyard starts carries the
project's state folder in its environment (`SHIPYARD_STATE_DIR`); a process listening on the
port without it, or with another project's, is somebody else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MARKER = "SHIPYARD_STATE_DIR"
"""The environment variable naming the state folder of the project a server belongs to."""


@dataclass(frozen=True)
class Listener:
    """The process listening on a port, as far as this user may see it."""

    pid: int
    command: str
    cwd: str | None
    state_dir: str | None
    ancestors: tuple[int, ...]

    def describe(self) -> str:
        where = f"the project in {Path(self.state_dir).parent}" if self.state_dir else None
        where = where or (f"started in {self.cwd}" if self.cwd else "started elsewhere")
        return f"pid {self.pid}, {where}: `{self.command}`"


def listener(port: int) -> Listener | None:
    """The process listening on `port` (TCP, any local address), or None when none is visible."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    pid = next(
        (
            c.pid
            for c in connections
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
        ),
        None,
    )
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        command = " ".join(process.cmdline())[:200]
        ancestors = tuple(p.pid for p in process.parents())
    except psutil.Error:
        return None
    try:
        cwd: str | None = process.cwd()
    except psutil.Error:
        cwd = None
    try:
        state_dir = process.environ().get(MARKER)
    except psutil.Error:
        state_dir = None
    return Listener(pid, command, cwd, state_dir, ancestors)


def belongs_to(found: Listener, state_dir: str | Path, own_pid: int | None) -> bool:
    """True when the listener is this project's: it carries the project's state folder, or it
    is (a child of) the process this project started."""
    if found.state_dir and Path(found.state_dir).resolve() == Path(state_dir).resolve():
        return True
    return own_pid is not None and (found.pid == own_pid or own_pid in found.ancestors)

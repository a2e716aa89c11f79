"""Working on a spool a live MTA owns, without racing it.

- Postfix: a running master (pid/master.pid, locked by master, process alive) means
  its own tools do the moving: `postsuper -h` holds the selected messages so no
  delivery touches them, queuetool copies them from `hold/`, re-checks inode, mtime
  and hash, then `postsuper -d ID hold` removes them (and their defer/bounce/trace logs).
- Exim: the `-D` file's fcntl write lock on bytes [0, len(id)+3), taken as Exim does,
  held across copy and removal; a busy lock means "being delivered": skip, retry later.
- Sendmail: flock(LOCK_EX|LOCK_NB) on the `qf` file, the same way.
- Exchange / IIS SMTP: no lock protocol to join; refuse unless the operator says the
  SMTP service is stopped or this is a copy (`offline=True`, `--offline`).
Offline spools (no MTA running) are handled with plain verified copy + unlink.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import fsutil
from .journal import RefusedError

POSTFIX_PID_FILE = "pid/master.pid"
OFFLINE_ONLY_MTAS = ("smtpsvc", "exchange")
TOOL_TIMEOUT = 120


@dataclass
class LiveState:
    """What runs on a spool: `live` if an MTA owns it now; `how` = the removal method."""

    mta: str
    live: bool
    how: str        # unlink | postsuper | exim-lock | sendmail-flock
    why: str        # one line, shown in the plan
    config: str | None = None


def _proc_names() -> list[str]:
    names = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return names
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", "rb") as handle:
                    names.append(handle.read().decode("utf-8", "replace").strip())
            except OSError:
                continue
    return names


def postfix_master_pid(root: Path) -> int | None:
    """The pid of a running Postfix master for this queue directory, or None."""
    try:
        fd, _st = fsutil.open_regular(root, POSTFIX_PID_FILE)
    except OSError:
        return None
    try:
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        locked_by_master = not fsutil.try_flock_exclusive(fd)
    finally:
        os.close(fd)
    pid = int(text) if text.isdigit() else 0
    if locked_by_master or fsutil.process_alive(pid):
        return pid or None
    return None


def detect_live(root: Path, mta: str, mta_config: str | None = None, offline: bool = False) -> LiveState:
    """Whether an MTA is running on `root` and how removal must be done."""
    root = Path(root)
    if mta == "postfix":
        pid = postfix_master_pid(root)
        if pid is None:
            return LiveState(mta, False, "unlink", "Postfix is not running on this queue (no live master.pid)")
        return LiveState(mta, True, "postsuper", f"Postfix master (pid {pid}) is running: "
                         "postsuper -h, copy from hold/, postsuper -d", mta_config)
    if mta == "exim":
        live = any(name in ("exim", "exim4") for name in _proc_names())
        return LiveState(mta, live, "exim-lock", ("Exim is running: " if live else "Exim not running: ")
                         + "each unit is copied and removed under its -D lock")
    if mta == "sendmail":
        live = any(name.startswith("sendmail") for name in _proc_names())
        return LiveState(mta, live, "sendmail-flock", ("Sendmail is running: " if live else "Sendmail not running: ")
                         + "each unit is copied and removed under a flock on its qf")
    if mta in OFFLINE_ONLY_MTAS:
        if offline:
            return LiveState(mta, False, "unlink", "operator says the SMTP service is stopped or this is a copy")
        return LiveState(mta, True, "refuse", "Exchange/IIS SMTP spool: work on a copy or with the SMTP "
                         "service stopped, then add --offline")
    return LiveState(mta, False, "unlink", "plain files; no MTA owns them")


# ----------------------------------------------------------------- Postfix

def postfix_tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        raise RefusedError(f"Postfix is running but {name} is not installed; stop Postfix "
                           "('postfix stop') or install its tools, then retry")
    return path


def check_postfix_config(root: Path, mta_config: str | None) -> str:
    """The config directory whose queue_directory is `root` (refuses a mismatch)."""
    config = mta_config or "/etc/postfix"
    postconf = postfix_tool("postconf")
    try:
        done = subprocess.run([postconf, "-c", config, "-h", "queue_directory"], capture_output=True,
                              text=True, timeout=TOOL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RefusedError(f"cannot ask postconf for queue_directory: {exc}") from None
    queue_dir = done.stdout.strip()
    if done.returncode != 0 or os.path.realpath(queue_dir) != os.path.realpath(root):
        raise RefusedError(
            f"Postfix is running on {root} but {config} has queue_directory={queue_dir or '?'}; "
            "give --mta-config DIR (the instance's config_directory)")
    return config


def _postsuper(config: str, args: list[str], ids: list[str]) -> subprocess.CompletedProcess:
    cmd = [postfix_tool("postsuper"), "-c", config, *args]
    try:
        return subprocess.run(cmd, input="".join(f"{i}\n" for i in ids), capture_output=True,
                              text=True, timeout=TOOL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RefusedError(f"postsuper failed to run: {exc}") from None


def postfix_hold(config: str, ids: list[str]) -> None:
    """`postsuper -h -`: put these messages on hold (no delivery touches them there)."""
    if ids:
        done = _postsuper(config, ["-h", "-"], ids)
        if done.returncode != 0:
            raise RefusedError(f"postsuper -h failed: {done.stderr.strip()[:300]}")


def postfix_release(config: str, ids: list[str]) -> None:
    """`postsuper -H -`: give back a hold queuetool took and then did not use."""
    if ids:
        _postsuper(config, ["-H", "-"], ids)


def postfix_delete(config: str, ids: list[str], queue: str) -> None:
    """`postsuper -d - QUEUE` for these ids, one call (also removes their defer/bounce/trace logs)."""
    if not ids:
        return
    done = _postsuper(config, ["-d", "-", queue], ids)
    if done.returncode != 0:
        shown = ids[0] if len(ids) == 1 else f"{ids[0]} (+{len(ids) - 1} more)"
        raise RefusedError(f"postsuper -d {shown} failed: {done.stderr.strip()[:300]}")


# ---------------------------------------------------------- per-unit locks

class UnitLock:
    """The MTA's own lock on one unit, held from before the copy until after removal.

    Exim: fcntl write lock on the -D file; Sendmail: flock on the qf file. Files are
    read through the locked descriptor (`fd_for`), since closing any other descriptor
    of the file would drop a POSIX lock.
    """

    def __init__(self, root: Path, how: str, unit_id: str, files: list[str]) -> None:
        self.root, self.how, self.unit_id, self.files = Path(root), how, unit_id, files
        self.fds: dict[str, int] = {}

    def _target(self) -> str | None:
        if self.how == "exim-lock":
            return next((f for f in self.files if f.endswith("-D")), None)
        if self.how == "sendmail-flock":
            return next((f for f in self.files if os.path.basename(f).startswith("qf")), None)
        return None

    def __enter__(self) -> "UnitLock":
        rel = self._target()
        if rel is None:
            return self
        path = fsutil.resolve_inside(self.root, rel, fresh=True)
        mode = os.O_RDWR | os.O_APPEND if self.how == "exim-lock" else os.O_RDONLY
        fd = os.open(path, mode | getattr(os, "O_NOFOLLOW", 0))
        if self.how == "exim-lock":
            ok = fsutil.try_fcntl_write_lock(fd, len(self.unit_id) + 3)
        else:
            ok = fsutil.try_flock_exclusive(fd)
        if not ok:
            os.close(fd)
            raise BusyError(f"{self.unit_id}: locked by the MTA (being delivered); retry later")
        self.fds[rel] = fd
        return self

    def fd_for(self, rel: str) -> int | None:
        return self.fds.get(rel)

    def __exit__(self, *exc: object) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class BusyError(Exception):
    """The MTA holds this unit right now; skip it and try again later."""

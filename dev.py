#!/usr/bin/env python3
"""Set-up and entry point for the two README commands: `demo` and `test`.

Creates ./.venv on first use (re-installs when setup.cfg changes), so a fresh
machine with Python >= 3.10 needs nothing else. Works on Linux, macOS and Windows.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".queuetool-installed"
PYTEST_NO_TESTS = 5


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    wanted = hashlib.sha256((ROOT / "setup.cfg").read_bytes()).hexdigest()
    py = venv_python()
    if py.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return py
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)
    return py


def install_system_test_packages() -> None:
    """Debian packages the live tests drive (a real Postfix, Chromium for the HTML report).

    Only as root on a Debian-like system with apt-get; elsewhere those tests say
    what is missing and fail rather than pass silently (see tests/live).
    """
    script = ROOT / "scripts" / "install-test-packages.sh"
    if os.environ.get("QUEUETOOL_NO_APT") or not script.exists():
        return
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    subprocess.run(["sh", str(script)], check=True)


def demo(args: list[str]) -> int:
    py = ensure_venv()
    cmd = [str(py), "-m", "queuetool", "demo", str(ROOT / "corpora"), *args]
    return subprocess.run(cmd).returncode


def test(args: list[str]) -> int:
    py = ensure_venv()
    install_system_test_packages()
    rc = subprocess.run([str(py), "-m", "pytest", *args], cwd=ROOT).returncode
    if rc == PYTEST_NO_TESTS:
        print("dev.py: pytest collected no tests; an empty suite is not a pass", file=sys.stderr)
        return 1
    return rc


def main(argv: list[str]) -> int:
    verbs = {"demo": demo, "test": test}
    if not argv or argv[0] not in verbs:
        print("usage: python3 dev.py demo|test [args...]", file=sys.stderr)
        return 2
    return verbs[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

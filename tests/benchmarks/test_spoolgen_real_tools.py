"""The benchmark spool writers produce files the MTAs' own tools accept.

Postfix's postcat/qshape come from the postfix package and exipick from exim4-base,
both installed by scripts/install-test-packages.sh (dev.py test, as root on Debian).
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXIPICK = Path("/opt/queuetool-tools/usr/sbin/exipick")
N = 40


def load_spoolgen():
    spec = importlib.util.spec_from_file_location("spoolgen", ROOT / "benchmarks" / "spoolgen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["spoolgen"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


spoolgen = load_spoolgen()


def require(path: str | Path) -> str:
    found = shutil.which(str(path)) or (str(path) if Path(path).exists() else None)
    if not found:
        pytest.fail(f"{path} is missing: run scripts/install-test-packages.sh as root (python3 dev.py test does)")
    return found


def postfix_config(tmp_path: Path, queue_dir: Path) -> Path:
    conf = tmp_path / "postfix-conf"
    conf.mkdir()
    (conf / "main.cf").write_text(f"queue_directory = {queue_dir}\ncompatibility_level = 3.6\n")
    (conf / "master.cf").write_text("")
    return conf


def test_postcat_reads_every_generated_postfix_file(tmp_path):
    postcat = require("/usr/sbin/postcat")
    spool = tmp_path / "postfix"
    spoolgen.write_spool("postfix", N, spool)
    conf = postfix_config(tmp_path, spool)
    files = sorted(p for p in (spool / "deferred").rglob("*") if p.is_file())
    assert len(files) == N
    for i, path in enumerate(files):
        result = subprocess.run([postcat, "-c", str(conf), str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr and "fatal" not in result.stderr
        assert "*** MESSAGE FILE END" in result.stdout
    # check one message's envelope against its template
    msg = spoolgen.make_message(20261127, 0)
    qid, _ = spoolgen.postfix_queue_file(msg, 100000)
    out = subprocess.run([postcat, "-c", str(conf), "-e", str(next(spool.rglob(qid)))],
                         capture_output=True, text=True).stdout
    assert f"sender: {msg.sender}" in out
    assert all(f"recipient: {r}" in out for r in msg.recipients)


def test_qshape_counts_the_generated_recipients(tmp_path):
    qshape = require("/usr/sbin/qshape")
    spool = tmp_path / "postfix"
    spoolgen.write_spool("postfix", N, spool)
    conf = postfix_config(tmp_path, spool)
    out = subprocess.run([qshape, "-c", str(conf), "deferred"], capture_output=True, text=True).stdout
    total = int(out.splitlines()[1].split()[1])
    assert total == sum(len(spoolgen.make_message(20261127, i).recipients) for i in range(N))


def test_exipick_reads_the_generated_exim_spool(tmp_path):
    exipick = require(EXIPICK)
    spool = tmp_path / "exim"
    spoolgen.write_spool("exim", N, spool)
    count = subprocess.run([exipick, "--spool", str(spool), "-bpc"], capture_output=True, text=True)
    assert count.stdout.strip() == str(N), count.stderr
    messages = [spoolgen.make_message(20261127, i) for i in range(N)]
    scanner = subprocess.run([exipick, "--spool", str(spool), "-bpc", "$authenticated_id eq scanner"],
                             capture_output=True, text=True).stdout.strip()
    assert scanner == str(sum(m.auth_user == "scanner" for m in messages))
    listing = subprocess.run([exipick, "--spool", str(spool), "-bp"], capture_output=True, text=True).stdout
    for msg in messages:
        assert spoolgen.exim_id(msg) in listing
        assert all(r in listing for r in msg.recipients)

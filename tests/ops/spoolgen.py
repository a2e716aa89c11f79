"""Generated spools for the operation tests, and a test reader with multi-file units
(import as `from ops.spoolgen import ...`; the fixture lives in conftest.py).

The `multifile` reader stands in for Postfix/Exim-style units whose message spans
several files (queue file + logs, -H + -D + msglog): `q/<id>` is the main file,
`d/<id>-D` the data and `log/<id>` a log. It is registered under the name
`multifile` for the duration of a test.
"""
from __future__ import annotations

import collections
import os
import random
import sys
import types
from pathlib import Path
from typing import Iterator

from queuetool import fsutil
from queuetool.headers import apply_headers, parse_header_block, split_header_block
from queuetool.model import QueuedMessage, QueueUnit
from queuetool.ops.journal import UNITS
from queuetool.spools import READER_MODULES, Spool


def build_multifile_reader() -> types.ModuleType:
    module = types.ModuleType("queuetool_test_multifile")
    module.MTA = "multifile"

    def detect(root: Path) -> int:
        return 0

    def iter_units(root: Path) -> Iterator[QueueUnit]:
        for rel, _entry in fsutil.walk_files(root, "q"):
            uid = rel.split("/", 1)[1]
            paths = [rel] + [p for p in (f"d/{uid}-D", f"log/{uid}") if os.path.lexists(os.path.join(root, p))]
            yield QueueUnit(id=uid, queue="q", paths=tuple(paths))

    def read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
        record = QueuedMessage(mta="multifile", id=unit.id, queue=unit.queue, files=list(unit.paths))
        data = fsutil.read_file(root, unit.paths[0])
        block, _ = split_header_block(data)
        apply_headers(record, parse_header_block(block))
        record.sender = record.header("X-Sender")
        return record

    def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
        return fsutil.read_file(root, unit.paths[0])

    module.detect, module.iter_units, module.read_unit = detect, iter_units, read_unit
    module.read_message_bytes = read_message_bytes
    return module


def write_file(root: Path, rel: str, data: bytes, mode: int = 0o600, mtime: float | None = None) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def make_multifile_spool(root: Path, count: int, seed: int = 0, senders=("spam@bad.example", "alice@example.com")) -> Spool:
    """`count` units of 1-3 files each, random modes and mtimes; returns the Spool."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        uid = f"U{i:04d}{rng.choice('ABCDEF')}"
        sender = senders[i % len(senders)]
        head = f"X-Sender: {sender}\nFrom: {sender}\nSubject: message {i}\n\n".encode()
        body = rng.randbytes(rng.randint(0, 3000))
        write_file(root, f"q/{uid}", head + body, rng.choice([0o600, 0o700, 0o640]),
                   1_600_000_000 + rng.randint(0, 10**7) + rng.random())
        if rng.random() < 0.7:
            write_file(root, f"d/{uid}-D", rng.randbytes(rng.randint(0, 500)), 0o640,
                       1_600_000_000 + rng.randint(0, 10**7))
        if rng.random() < 0.5:
            write_file(root, f"log/{uid}", f"status=4.4.1 try {i}\n".encode(), 0o600,
                       1_600_000_000 + rng.randint(0, 10**7))
    return Spool(root, "multifile")


def make_eml_spool(root: Path, count: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sender = "spam@bad.example" if i % 3 == 0 else f"user{i}@example.com"
        data = (f"From: {sender}\nTo: r{i}@example.org\nSubject: s{i}\n\n").encode() + rng.randbytes(rng.randint(0, 200))
        write_file(root, f"m{i:03d}.eml", data, 0o644, 1_600_000_000 + i)
    return root


def file_table(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """rel path -> (bytes, mode, mtime_ns) of every regular file below root."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root)] = (handle.read(), st.st_mode & 0o7777, st.st_mtime_ns)
    return out


def stored_copies(qdir: Path) -> list[bytes]:
    base = Path(qdir) / UNITS
    return [data for data, _mode, _mtime in file_table(base).values()] if base.exists() else []


def byte_multiset(spool_root: Path, qdir: Path) -> collections.Counter:
    """Every file's bytes in the spool plus every copy held in QDIR."""
    counter = collections.Counter(data for data, _m, _t in file_table(spool_root).values())
    counter.update(stored_copies(qdir))
    return counter

"""Plain RFC 5322 message files: a tree of .eml files (exports, copies of queues).

The file *is* the message; there is no envelope, so sender and recipients stay
empty unless the file carries envelope lines a more specific reader understands.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .. import fsutil
from ..headers import HEAD_READ_LIMIT, apply_headers, parse_header_block, split_header_block
from ..model import QueuedMessage, QueueUnit

MTA = "eml"
MESSAGE_SUFFIXES = (".eml", ".msg822")
_DETECT_SAMPLE = 20


def _is_message_name(name: str) -> bool:
    return name.lower().endswith(MESSAGE_SUFFIXES)


def _looks_like_message(head: bytes) -> bool:
    block, _ = split_header_block(head)
    names = {name.lower() for name, _ in parse_header_block(block[:8192])}
    return bool(names & {"from", "received", "subject", "message-id", "date", "to"})


def detect(root: Path) -> int:
    """Claim a directory whose .eml files (directly inside) look like messages."""
    checked = hits = 0
    try:
        names = sorted(p.name for p in Path(root).iterdir() if p.is_file() and _is_message_name(p.name))
    except OSError:
        return 0
    for name in names[:_DETECT_SAMPLE]:
        checked += 1
        try:
            if _looks_like_message(fsutil.read_file(root, name, 8192)):
                hits += 1
        except OSError:
            continue
    return 10 if hits and hits * 2 >= checked else 0


def iter_units(root: Path) -> Iterator[QueueUnit]:
    for rel, _entry in fsutil.walk_files(root):
        if _is_message_name(rel):
            yield QueueUnit(id=Path(rel).stem, queue="eml", paths=(rel,))


def read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
    rel = unit.paths[0]
    record = QueuedMessage(mta=MTA, id=unit.id, queue=unit.queue, files=list(unit.paths))
    if full:
        data, st = fsutil.read_file_and_stat(root, rel)
    else:
        data, st = fsutil.read_head(root, rel, HEAD_READ_LIMIT)
    record.size = st.st_size
    record.arrival = fsutil.iso_utc(st.st_mtime)
    block, body = split_header_block(data)
    if not body and len(data) >= HEAD_READ_LIMIT and not full:
        record.add_error(f"header block longer than {HEAD_READ_LIMIT} bytes; cut there")
    apply_headers(record, parse_header_block(block))
    if not record.headers:
        record.add_error("no RFC 5322 header fields found")
    return record


def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
    return fsutil.read_file(root, unit.paths[0])

"""Plain RFC 5322 messages: a tree of .eml files, a Maildir, or mbox files.

There is no queue envelope in any of them, so `sender` and `recipients` stay empty
(an mbox `From_` line's address is kept in `details["mbox_from"]`: it is usually the
envelope sender the delivering MTA saw, but nothing guarantees it).

- .eml tree: every `*.eml` / `*.msg822` below the root; id = file stem; queue `eml`.
- Maildir (root has `cur/` and `new/`): files in `new/`, `cur/`, `tmp/` and in
  Maildir++ `.Folder/{new,cur,tmp}`; id = the unique part of the name (before `:2,`
  or the Windows-safe `!2,`/`;2,`); queue = `new`/`cur`/`tmp`; flags in details.
- mbox (files starting with a `From ` line, directly in the root): one unit per message,
  id = `<file>:<byte offset of its From_ line>`; queue `mbox`; `>From ` lines are
  unescaped one level (mboxrd) by `read_message_bytes`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from .. import fsutil
from ..headers import HEAD_READ_LIMIT, apply_headers, parse_header_block
from ..model import QueuedMessage, QueueUnit
from . import find_body_start, read_into_record, read_message_head
from . import child_dirs, dir_listing, file_head, sample_vote

MTA = "eml"
MESSAGE_SUFFIXES = (".eml", ".msg822")
MAILDIR_SUBDIRS = ("new", "cur", "tmp")
MAILDIR_FLAGS = {"P": "passed", "R": "replied", "S": "seen", "T": "trashed", "D": "draft", "F": "flagged"}
MBOX_CHUNK = 1 << 20
MAX_MBOX_MESSAGE = 256 * 1024 * 1024
_DETECT_SAMPLE = 20
_INFO_SEPARATOR = re.compile(r"[:!;]2,")
_MBOX_FROM_LINE = re.compile(rb"^From (\S*)[ \t]*(.*?)\r?$")
_MBOX_DATE_END = re.compile(rb"\d{4}\s*$")
_MBOX_ESCAPED = re.compile(rb"(?m)^>(>*From )")
# A header line (not a continuation) naming one of the fields that make a file look like
# a message, as headers.parse_header_block would name it after unfolding: blanks and
# folds may come between the name and the colon.
_MESSAGE_FIELD = re.compile(
    rb"(?:\A|\n)(?:from|received|subject|message-id|date|to)(?:[ \t]|\r?\n[ \t])*:", re.IGNORECASE)


def _is_message_name(name: str) -> bool:
    return name.lower().endswith(MESSAGE_SUFFIXES)


def _looks_like_message(head: bytes) -> bool:
    """A From/Received/Subject/Message-ID/Date/To field in the first 8 KiB of the header
    block (a regex over the raw bytes: detection reads many files, so no decoding)."""
    body_start = find_body_start(head)
    block = head if body_start < 0 else head[:body_start]
    return _MESSAGE_FIELD.search(block, 0, 8192) is not None


def _is_maildir(root: Path, listing: list[tuple[str, bool]] | None = None) -> bool:
    """`cur/` and `new/` directories (any case) in root; `listing`: dir_listing(root) if known."""
    subdirs = {name.lower() for name, is_dir in (dir_listing(root) if listing is None else listing) if is_dir}
    return "cur" in subdirs and "new" in subdirs


def _files_in(directory: Path) -> list[str]:
    return [name for name, is_dir in dir_listing(directory) if not is_dir]


def _is_mbox_file(root: Path, name: str, strict: bool = True) -> bool:
    """A file whose first line is an mbox `From ` line; `strict` also wants a header after it
    (detection), otherwise an asctime-like date on the From_ line is enough (listing)."""
    if name.startswith(".") or _is_message_name(name):
        return False
    try:
        head = file_head(root, name, 512)
    except OSError:
        return False
    first, _, rest = head.partition(b"\n")
    match = _MBOX_FROM_LINE.match(first)
    if not match:
        return False
    if strict:
        return _looks_like_message(rest)
    return bool(_MBOX_DATE_END.search(match.group(2))) or name.lower().endswith(".mbox")


def detect(root: Path) -> int:
    """Maildir (cur+new), mbox files, or .eml files directly inside that look like messages."""
    root = Path(root)
    if _is_maildir(root):
        return 15
    names = _files_in(root)
    sample = [n for n in names if _is_message_name(n)][:_DETECT_SAMPLE]
    if sample_vote(sample, lambda name: _looks_like_message(file_head(root, name, 8192))):
        return 10
    if any(_is_mbox_file(root, name) for name in names[:_DETECT_SAMPLE]):
        return 12
    return 0


def maildir_info(name: str) -> tuple[str, list[str]]:
    """(unique part, flag words) of a Maildir file name like `123.M1P2.host:2,RS`."""
    match = _INFO_SEPARATOR.search(name)
    if not match:
        return name, []
    letters = name[match.end():]
    return name[: match.start()], [MAILDIR_FLAGS.get(ch, ch) for ch in letters if ch.isalpha()]


def _maildir_units(root: Path) -> Iterator[QueueUnit]:
    folders: list[tuple[str, Path]] = [("", root)]
    try:
        with os.scandir(root) as it:
            folders += sorted(
                (e.name, Path(e.path)) for e in it
                if e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                and child_dirs(Path(e.path), *MAILDIR_SUBDIRS)
            )
    except OSError:
        pass
    for prefix, folder in folders:
        subdirs = child_dirs(folder, *MAILDIR_SUBDIRS)
        for key in MAILDIR_SUBDIRS:
            if key not in subdirs:
                continue
            rel_dir = f"{prefix}/{subdirs[key].name}" if prefix else subdirs[key].name
            for name in _files_in(subdirs[key]):
                unique, _ = maildir_info(name)
                unit_id = f"{prefix}/{unique}" if prefix else unique
                yield QueueUnit(id=unit_id, queue=key, paths=(f"{rel_dir}/{name}",))


def mbox_offsets(root: Path, rel: str) -> Iterator[int]:
    """Byte offsets of the `From ` separator lines of an mbox file (read in chunks)."""
    fd, _ = fsutil.open_regular(root, rel)
    try:
        offset = 0
        carry = b"\n"  # the file start counts as a line start
        while True:
            chunk = os.read(fd, MBOX_CHUNK)
            if not chunk:
                break
            data = carry + chunk
            base = offset - len(carry)
            for match in re.finditer(rb"\nFrom ", data):
                yield base + match.start() + 1
            carry = data[-6:]
            offset += len(chunk)
    finally:
        os.close(fd)


def _mbox_units(root: Path, names: list[str]) -> Iterator[QueueUnit]:
    for name in names:
        if not _is_mbox_file(root, name, strict=False):
            continue
        try:
            for offset in mbox_offsets(root, name):
                yield QueueUnit(id=f"{name}:{offset}", queue="mbox", paths=(name,))
        except OSError:
            yield QueueUnit(id=f"{name}:0", queue="mbox", paths=(name,))


def iter_units(root: Path) -> Iterator[QueueUnit]:
    root = Path(root)
    listing = dir_listing(root)  # one listing for the Maildir check and the mbox files
    if _is_maildir(root, listing):
        yield from _maildir_units(root)
        return
    yield from _mbox_units(root, [name for name, is_dir in listing if not is_dir])
    for rel, _name in fsutil.walk_files(root):
        if _is_message_name(rel):
            yield QueueUnit(id=_stem(rel), queue="eml", paths=(rel,))


def _stem(rel: str) -> str:
    """Path(rel).stem without pathlib (the file name up to its last dot)."""
    name = rel.rpartition("/")[2]
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def _mbox_offset(unit: QueueUnit) -> int:
    try:
        return int(unit.id.rpartition(":")[2])
    except ValueError:
        raise ValueError(f"{unit.id}: mbox key has no byte offset") from None


def _read_mbox_message(root: Path, unit: QueueUnit, limit: int | None) -> tuple[bytes, bytes, int]:
    """(From_ line, message bytes up to the next From_ line or `limit`, message size or -1).

    Past `limit` the file is only scanned (not kept) for the next From_ line, so the
    size is known without holding the message.
    """
    start = _mbox_offset(unit)
    wanted = MAX_MBOX_MESSAGE if limit is None else limit
    fd, st = fsutil.open_regular(root, unit.paths[0])
    try:
        if start < 0 or start >= st.st_size:
            raise ValueError(f"offset {start} is outside the mbox file ({st.st_size} bytes)")
        os.lseek(fd, start, os.SEEK_SET)
        kept = b""
        total = 0
        tail = b""
        end = -1
        while total < MAX_MBOX_MESSAGE:
            chunk = os.read(fd, MBOX_CHUNK if total >= wanted else min(MBOX_CHUNK, wanted - total + 64))
            if not chunk:
                end = total
                break
            window = tail + chunk
            nxt = window.find(b"\nFrom ", 1 if total == 0 else 0)
            if nxt >= 0:
                end = total - len(tail) + nxt + 1
                chunk = window[len(tail): nxt + 1]
            if len(kept) < wanted:
                kept += chunk[: wanted - len(kept)]
            total += len(chunk)
            if end >= 0:
                break
            tail = window[-6:]
    finally:
        os.close(fd)
    line_end = kept.find(b"\n")
    from_line = kept[: line_end if line_end >= 0 else len(kept)]
    if not _MBOX_FROM_LINE.match(from_line):
        raise ValueError(f"no mbox From_ line at offset {start}")
    message = kept[line_end + 1:] if line_end >= 0 else b""
    size = end - line_end - 1 if end >= 0 and line_end >= 0 else -1
    return from_line, message, size


def read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
    return read_into_record(MTA, root, unit, full, _read_into)


def _read_into(root: Path, unit: QueueUnit, record: QueuedMessage, full: bool) -> None:
    rel = unit.paths[0]
    limit = None if full else HEAD_READ_LIMIT
    if unit.queue == "mbox":
        st = fsutil.file_stat(root, rel)
        record.arrival = fsutil.iso_utc(st.st_mtime)
        try:
            from_line, data, size = _read_mbox_message(root, unit, limit)
        except ValueError as exc:
            record.add_error(str(exc))
            return
        record.size = size if size >= 0 else None
        match = _MBOX_FROM_LINE.match(from_line)
        record.details["mbox_from"] = match.group(1).decode("utf-8", "backslashreplace") if match else None
        record.details["mbox_date"] = match.group(2).decode("utf-8", "backslashreplace") if match else None
        record.details["offset"] = _mbox_offset(unit)
        truncated = limit is not None and (size < 0 or size > len(data))
        body_start = find_body_start(data)
    else:
        if limit is None:
            data, st = fsutil.read_file_and_stat(root, rel)
            body_start = find_body_start(data)
        else:
            data, body_start, st = read_message_head(root, rel, limit)
        record.size = st.st_size
        record.arrival = fsutil.iso_utc(st.st_mtime)
        truncated = limit is not None and st.st_size > len(data)
        if unit.queue in MAILDIR_SUBDIRS:
            _, flags = maildir_info(rel.rpartition("/")[2])
            record.details["maildir_flags"] = flags
    if body_start < 0 and truncated:
        record.add_error(f"header block longer than {HEAD_READ_LIMIT} bytes; cut there")
    apply_headers(record, parse_header_block(data if body_start < 0 else data[:body_start]))
    if not record.headers:
        record.add_error("no RFC 5322 header fields found")


def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
    if unit.queue == "mbox":
        _, message, _ = _read_mbox_message(root, unit, None)
        return _MBOX_ESCAPED.sub(rb"\1", message)
    return fsutil.read_file(root, unit.paths[0])

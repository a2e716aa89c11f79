"""Postfix queue files (docs/readers/postfix.md; format: research/unix-spool-formats.md §1).

A queue file is a sequence of records: one type byte, a base-128 little-endian length,
the payload [PF src/global/record.c]. Envelope records come first, then `M` and the
message content as `N` (line) / `L` (partial line) records that `p` pointers may
redirect, then `X` and the extracted segment, then `E` [PF src/global/rec_type.h].
The directory a file sits in is its state; its mode says whether cleanup finished it.
"""
from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .. import fsutil
from ..headers import HEAD_READ_LIMIT, apply_headers, parse_header_block
from ..model import QueuedMessage, QueueUnit

MTA = "postfix"
# showq's order, then the states showq does not list [PF src/global/mail_queue.h].
QUEUES = ("maildrop", "active", "incoming", "deferred", "hold", "corrupt", "saved")
LOG_QUEUES = ("defer", "bounce", "trace")
MARKER_DIRS = ("pid", "public", "private", "flush", "defer")

# Every type byte Postfix writes to a queue file [PF src/global/rec_type.h].
KNOWN_TYPES = frozenset(b"CTcFISRDO/WVA>K<ionMXLNwpErePfdm")

# Record types, as ints: the parser compares data[offset] [PF src/global/rec_type.h].
(TYPE_SIZE, TYPE_TIME, TYPE_CTIME, TYPE_FULLNAME, TYPE_FROM, TYPE_RCPT, TYPE_DONE, TYPE_ORCP, TYPE_DRCP,
 TYPE_ATTR, TYPE_MESG, TYPE_XTRA, TYPE_END, TYPE_PTR, TYPE_PAD, TYPE_NORM, TYPE_CONT, TYPE_WARN,
 TYPE_REDIRECT) = b"CTcFSRDO/AMXEpwNLW>"
# Envelope records kept under details as the first value seen.
_OTHER_NAMES = {ord("P"): "priority", ord("V"): "verp_delimiters", ord("r"): "return_receipt",
                ord("e"): "errors_to", ord("I"): "content_inspector", TYPE_CONT: "content_filter",
                ord("K"): "killed_record"}
# Attributes the parser looks at itself: the DSN ones apply to the next recipient.
_SPECIAL_ATTRS = frozenset(("create_time", "dsn_orig_rcpt", "notify_flags"))
# Bytes as ints: `int in bytes` is a byte search; `b":" in line` first tries (and fails,
# at the cost of a formatted TypeError) to read b":" as an int.
_COLON = ord(":")
_BLANKS = (ord(" "), ord("\t"))
_NOT_INLINE = frozenset((TYPE_PTR, TYPE_PAD))  # records the parsing loops leave to _Walk.next

MAX_VARINT_BYTES = 5          # rec_get_raw reads at most sizeof(int) * 8 / 7 length bytes
MAX_ATTRS = 1000              # cleanup keeps <= 100; a file with more is hostile
MAX_RESIDUE = 20              # residue snippets kept per file
BLOCK = 64 * 1024
WHOLE_READ_MAX = 4 * BLOCK     # files up to this size are read in one go

_LONG_ID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
_B52 = {c: i for i, c in enumerate(_LONG_ID_ALPHABET)}
_LONG_ID = re.compile(r"^([0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{6,})([0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{4})z([0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]+)$")
_SHORT_ID = re.compile(r"^[0-9A-F]{6,}$")


class CorruptQueueFile(Exception):
    """The file breaks the record framing; the message says where and how."""


# ------------------------------------------------------------------ queue ids
def _base(text: str, radix: int) -> int:
    """`text` as a number; _LONG_ID's character classes already keep every digit < radix."""
    value = 0
    for char in text:
        value = value * radix + _B52[char]
    return value


def decode_queue_id(queue_id: str) -> dict:
    """What a queue id itself says: long ids carry arrival seconds, usec and inode.

    Long: base-52 seconds, 4 base-52 usec digits, `z`, base-51 inode; short: `%05X`
    usec then hex inode [PF src/global/mail_queue.c mail_queue_enter].
    """
    match = _LONG_ID.match(queue_id)
    if match and len(queue_id) <= 40:
        seconds, usec, inode = _base(match[1], 52), _base(match[2], 52), _base(match[3], 51)
        out = {"id_kind": "long", "id_inode": inode, "id_usec": usec}
        when = fsutil.iso_utc(seconds)
        if when:
            out["id_time"] = when
        return out
    if _SHORT_ID.match(queue_id) and len(queue_id) <= 40:
        return {"id_kind": "short", "id_usec": int(queue_id[:5], 16), "id_inode": int(queue_id[5:], 16)}
    return {"id_kind": "unknown"}


# ------------------------------------------------------------------ record reading
class _BlockFile:
    """A large queue file read on demand in 64 KiB blocks; indexes and slices like bytes,
    so the parser runs unchanged on it (a header-only read of a 50 MB message touches
    the first block and the extracted segment, not the body)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._blocks: dict[int, bytes] = {}

    def __len__(self) -> int:
        return self.size

    def _block(self, number: int) -> bytes:
        block = self._blocks.get(number)
        if block is None:
            block = self._blocks[number] = os.pread(self.fd, BLOCK, number * BLOCK)
        return block

    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, slice):
            return self._read(key.start, key.stop - key.start)
        if key >= self.size:
            raise IndexError(key)  # as bytes do: the parser frames the end of file on it
        block = self._block(key // BLOCK)
        if key % BLOCK >= len(block):
            raise CorruptQueueFile(f"file ended at offset {key} while being read")
        return block[key % BLOCK]

    def _read(self, offset: int, count: int) -> bytes:
        parts = []
        while count > 0 and offset < self.size:
            number, start = divmod(offset, BLOCK)
            piece = self._block(number)[start:start + count]
            if not piece:
                break
            parts.append(piece)
            offset += len(piece)
            count -= len(piece)
        return b"".join(parts)


def _load(fd: int, size: int) -> bytes | _BlockFile:
    """The whole file in one read when small (one syscall beats seeking), else blocks."""
    if size > WHOLE_READ_MAX:
        return _BlockFile(fd, size)
    return fsutil.read_fd(fd, size, size)  # goes on after a short read (odd filesystems)


def _frame(data: bytes | _BlockFile, offset: int) -> tuple[int, int, int]:
    """(type, payload start, payload end) of the record at `offset` [PF record.c rec_get_raw].

    The parser inlines the one-byte-length case; this is the general case and the
    one place that words framing errors.
    """
    head = data[offset:offset + 1 + MAX_VARINT_BYTES]
    if not head:
        raise CorruptQueueFile(f"unexpected end of file at offset {offset} (no end record)")
    length = shift = 0
    pos = 1
    while True:
        if pos >= len(head):
            raise CorruptQueueFile(f"record at offset {offset}: length field runs past end of file")
        byte = head[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
        if pos > MAX_VARINT_BYTES:
            raise CorruptQueueFile(f"record at offset {offset}: length field too long")
    start = offset + pos
    if start + length > len(data):
        raise CorruptQueueFile(
            f"record {head[:1]!r} at offset {offset} claims {length} bytes; file ends at {len(data)}")
    return head[0], start, start + length


@dataclass
class ParsedQueueFile:
    """Everything read from one queue file, in the reader's terms."""

    size_fields: list[int] = field(default_factory=list)
    arrival: float | None = None
    create_time: int | None = None
    sender: str | None = None
    fullname: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)       # R: still to deliver
    done: list[str] = field(default_factory=list)          # D: delivered or bounced
    canceled: list[str] = field(default_factory=list)      # /: dropped (duplicate, milter)
    original: dict[str, str] = field(default_factory=dict)  # address -> O record, where they differ
    recipient_offsets: dict[str, int] = field(default_factory=dict)
    header_lines: list[bytes] = field(default_factory=list)
    body_lines: list[bytes] = field(default_factory=list)
    header_complete: bool = False
    header_cut: bool = False
    content_start: int | None = None
    end_offset: int | None = None
    residue: list[dict] = field(default_factory=list)
    other: dict[str, str] = field(default_factory=dict)
    record_count: int = 0


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", "backslashreplace")


def _pointer(payload: bytes, size: int, offset: int) -> int:
    try:
        target = int(payload.strip() or b"0")
    except ValueError:
        raise CorruptQueueFile(f"pointer record at offset {offset} is not a number") from None
    if target < 0 or target >= size:
        raise CorruptQueueFile(f"pointer record at offset {offset} points outside the file ({target})")
    return target


class _Walk:
    """One parse's position-independent state, and the general path of the record walk.

    The parsing loops read plain records (one-byte length, not `p`/`w`) inline as long
    as the walk has only moved forward; everything else goes through `next`: longer
    lengths, framing errors, `p` pointers, `w` padding and, once a jump has gone
    backwards, the check that no offset is read twice (pointer loops). Until then no
    offset can repeat, so the visited offsets are kept as segments, not a set.
    """

    __slots__ = ("data", "size", "cap", "parsed", "count", "limit", "orig_rcpt",
                 "visited", "segments", "segment_start", "high")

    def __init__(self, data: bytes | _BlockFile, parsed: ParsedQueueFile, full: bool) -> None:
        self.data = data
        self.size = len(data)
        # header-only reads never hold more than HEAD_READ_LIMIT of one record
        self.cap = self.size if full else HEAD_READ_LIMIT
        self.parsed = parsed
        self.count = 0              # records read by `next` (the loops count their own)
        self.limit = self.size      # inline records must end by here; -1 sends all here
        self.orig_rcpt: str | None = None  # the O record that applies to the next recipient
        self.visited: set[int] | None = None
        self.segments: list[tuple[int, int]] = []  # (start, end) of stretches read in order
        self.segment_start = 0
        self.high = 0               # end of the furthest record read so far

    def next(self, offset: int) -> tuple[int, int, int, int, int]:
        """(type, offset, payload start, payload stop, end) of the next record that is
        not a pointer or padding, from `offset`."""
        data = self.data
        while True:
            if self.visited is not None:
                if offset in self.visited:
                    raise CorruptQueueFile(f"pointer loop at offset {offset}")
                self.visited.add(offset)
            rtype, start, end = _frame(data, offset)
            self.count += 1
            stop = end if end - start <= self.cap else start + self.cap
            if rtype == TYPE_PTR:
                target = _pointer(data[start:stop], self.size, offset)
                if target == 0:
                    offset = end
                    continue
                if target > end and self._inside_content(offset) and self._inside_content(target):
                    self._skipped(end, target)
                self.jump(end, target)
                offset = target
                continue
            if rtype == TYPE_PAD:
                offset = end
                continue
            return rtype, offset, start, stop, end

    def jump(self, end: int, target: int) -> None:
        """Reading moves from `end` (just past the last record read) to `target`."""
        if self.visited is None:
            self.segments.append((self.segment_start, end))
            self.high = max(self.high, end)
            if target < self.high:  # backwards: offsets may repeat from here on
                self.visited = self.visited_offsets()
                self.limit = -1
        self.segment_start = target

    def visited_offsets(self, end: int | None = None) -> set[int]:
        """Every record offset read so far (`end`: where reading stands now)."""
        if self.visited is not None:
            return self.visited
        segments = self.segments if end is None else self.segments + [(self.segment_start, end)]
        visited = set()
        for offset, stop in segments:
            while offset < stop:  # these records framed before; they frame again
                visited.add(offset)
                offset = _frame(self.data, offset)[2]
        return visited

    def _inside_content(self, offset: int) -> bool:
        fields = self.parsed.size_fields
        start = self.parsed.content_start
        return start is not None and len(fields) >= 2 and start <= offset < fields[1] + fields[0]

    def _skipped(self, start: int, end: int) -> None:
        """Content bytes a pointer jumps over: a header deleted by a milter keeps its
        bytes, only its first 17 become a pointer [PF src/cleanup/cleanup_milter.c]."""
        residue = self.parsed.residue
        if len(residue) < MAX_RESIDUE:
            chunk = self.data[start:start + min(end - start, 2048)]
            residue.append({"offset": start, "kind": "skipped", "text": _text(chunk)})


def parse_queue_file(data: bytes | _BlockFile, full: bool) -> ParsedQueueFile:
    """Read envelope, (header or whole) content and the extracted segment.

    Raises CorruptQueueFile with what is known so far in `exc.parsed`.
    """
    parsed = ParsedQueueFile()
    walk = _Walk(data, parsed, full)
    try:
        offset = _envelope_records(walk, 0, envelope=True)
        if offset is None:
            return parsed  # E before M: no content
        parsed.content_start = offset
        offset = _content_records(walk, offset, full)
        offset = _envelope_records(walk, offset, envelope=False)
        _heap_residue(walk, offset)
    except CorruptQueueFile as exc:
        exc.parsed = parsed  # type: ignore[attr-defined]
        raise
    finally:
        parsed.record_count = walk.count
    return parsed


# The loops below inline the common case of `_Walk.next` (one-byte length, offset
# still moving forward): per-record calls were most of the cost of a queue file.

def _envelope_records(walk: _Walk, offset: int, envelope: bool) -> int | None:
    """The envelope segment up to M (returns the offset after it, None if E comes
    first), or with envelope=False the extracted segment up to E (returns the offset
    after E). Both hold the same record types [PF src/global/rec_type.h]."""
    data = walk.data
    limit = walk.limit
    parsed = walk.parsed
    attrs = parsed.attrs
    recipient_offsets = parsed.recipient_offsets
    orig_rcpt = walk.orig_rcpt
    first = envelope
    count = 0
    end = offset
    try:
        while True:
            offset = end
            try:
                rtype = data[offset]
                length = data[offset + 1]
            except IndexError:
                walk.next(offset)  # raises: the file ends inside this record's framing
            start = offset + 2
            end = start + length
            if length < 0x80 and end <= limit and rtype not in _NOT_INLINE:
                stop = end
                count += 1
            else:
                rtype, offset, start, stop, end = walk.next(offset)
                limit = walk.limit
            if first:
                first = False
                if rtype not in KNOWN_TYPES:
                    raise CorruptQueueFile(f"not a Postfix queue file (first record type {bytes((rtype,))!r})")
            if rtype == TYPE_ATTR:
                key, sep, value = data[start:stop].decode("utf-8", "backslashreplace").partition("=")
                if not sep:
                    continue
                if key in _SPECIAL_ATTRS:
                    if key != "create_time":
                        continue  # per-recipient DSN settings, not message attributes
                    raw = data[start:stop].partition(b"=")[2]
                    if parsed.create_time is None and raw.isdigit():  # ASCII digits, as the bytes say
                        parsed.create_time = int(raw)
                if key not in attrs and len(attrs) < MAX_ATTRS:
                    attrs[key] = value
            elif rtype == TYPE_RCPT or rtype == TYPE_DONE or rtype == TYPE_DRCP:
                address = data[start:stop].decode("utf-8", "backslashreplace")
                if rtype == TYPE_RCPT:
                    parsed.pending.append(address)
                elif rtype == TYPE_DONE:
                    parsed.done.append(address)
                else:
                    parsed.canceled.append(address)
                if orig_rcpt is not None:
                    if orig_rcpt != address:
                        parsed.original[address] = orig_rcpt
                    orig_rcpt = None
                recipient_offsets[address] = offset
            elif rtype == TYPE_ORCP:
                orig_rcpt = data[start:stop].decode("utf-8", "backslashreplace")
            elif rtype == TYPE_TIME:
                parts = data[start:stop].split()
                if parts and parts[0].isdigit():
                    usec = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                    parsed.arrival = int(parts[0]) + min(usec, 999999) / 1e6
            elif rtype == TYPE_SIZE:
                if not parsed.size_fields:
                    parts = data[start:stop].split()[:6]
                    if b"".join(parts).isdigit():  # the usual fixed-width numbers
                        parsed.size_fields = list(map(int, parts))
                    else:
                        parsed.size_fields = [int(x) for x in parts if x.isdigit()]
            elif rtype == TYPE_FROM:
                if parsed.sender is None:
                    parsed.sender = _text(data[start:stop])
            elif rtype == TYPE_MESG:
                if envelope:
                    return end
                raise CorruptQueueFile(f"unexpected b'M' record at offset {offset} after the content")
            elif rtype == TYPE_END:
                parsed.end_offset = offset
                return None if envelope else end
            elif rtype == TYPE_NORM:
                if not envelope:
                    raise CorruptQueueFile(f"unexpected b'N' record at offset {offset} after the content")
            elif rtype == TYPE_CTIME:
                payload = data[start:stop].strip()
                if payload.isdigit():
                    parsed.create_time = int(payload)
            elif rtype == TYPE_FULLNAME:
                parsed.fullname = _text(data[start:stop])
            elif rtype == TYPE_REDIRECT:
                parsed.other["redirect_to"] = _text(data[start:stop])
            elif rtype == TYPE_WARN:
                parsed.other["warning_time"] = _text(data[start:stop].strip())
            elif rtype in _OTHER_NAMES:
                parsed.other.setdefault(_OTHER_NAMES[rtype], _text(data[start:stop]))
    finally:
        walk.count += count
        walk.orig_rcpt = orig_rcpt


def _content_records(walk: _Walk, offset: int, full: bool) -> int:
    """N/L records joined into lines up to X; returns the offset after X.

    Header-only reads stop at the end of the header block (or HEAD_READ_LIMIT) and
    skip the body."""
    data = walk.data
    limit = walk.limit
    parsed = walk.parsed
    header_lines = parsed.header_lines
    body_lines = parsed.body_lines
    partial: list[bytes] = []
    in_header = True
    header_bytes = count = 0
    header_limit = sys.maxsize if full else HEAD_READ_LIMIT
    end = offset
    try:
        while True:
            offset = end
            try:
                rtype = data[offset]
                length = data[offset + 1]
            except IndexError:
                walk.next(offset)  # raises: the file ends inside this record's framing
            start = offset + 2
            end = start + length
            if length < 0x80 and end <= limit and rtype not in _NOT_INLINE:
                stop = end
                count += 1
            else:
                rtype, offset, start, stop, end = walk.next(offset)
                limit = walk.limit
            if rtype == TYPE_NORM:
                line = data[start:stop]
                if partial:
                    line = b"".join(partial) + line
                    partial = []
                if not in_header:
                    body_lines.append(line)
                    continue
                if _COLON in line or (line and line[0] in _BLANKS):
                    header_lines.append(line)
                    header_bytes += stop - start + 1
                    if header_bytes <= header_limit:
                        continue
                    parsed.header_cut = True
                else:  # the blank line (or a line that is no header) ends the header block
                    in_header = False
                    parsed.header_complete = True
                    if line:
                        body_lines.append(line)
                    if full:
                        continue
            elif rtype == TYPE_CONT:
                partial.append(data[start:stop])
                header_bytes += stop - start
                if not in_header or header_bytes <= header_limit:
                    continue
                parsed.header_cut = True
            elif rtype == TYPE_XTRA:
                if partial:
                    (header_lines if in_header else body_lines).append(b"".join(partial))
                if in_header:
                    parsed.header_complete = True
                return end
            else:
                raise CorruptQueueFile(
                    f"unexpected record {bytes((rtype,))!r} at offset {offset} inside the message content")
            break  # header-only read, header block done
    finally:
        walk.count += count
    return _skip_body(walk, end)


def _skip_body(walk: _Walk, offset: int) -> int:
    """Seek past the body with the C record: X sits at data_offset + content size (as
    qmgr and showq find it); returns the offset after X."""
    data = walk.data
    fields = walk.parsed.size_fields
    if len(fields) >= 2 and fields[0] > 0:
        target = fields[1] + fields[0]
        if 0 < target < walk.size and data[target] == TYPE_XTRA:
            try:
                after = _frame(data, target)[2]
            except CorruptQueueFile:
                pass
            else:
                walk.jump(offset, target)
                if walk.visited is not None:
                    walk.visited.add(target)
                return after
    # No usable size record (maildrop files have none): walk the rest of the content.
    while True:
        rtype, at, _start, _stop, offset = walk.next(offset)
        if rtype == TYPE_XTRA:
            return offset
        if rtype != TYPE_NORM and rtype != TYPE_CONT:
            raise CorruptQueueFile(f"unexpected record {bytes((rtype,))!r} at offset {at} inside the message content")


def _heap_residue(walk: _Walk, offset: int) -> None:
    """Records after E that no pointer reached: earlier versions of edited headers."""
    data = walk.data
    residue = walk.parsed.residue
    if offset >= walk.size:
        return  # the common case: E is the last record
    visited = walk.visited_offsets(offset)
    count = 0
    while offset < walk.size and count < 10000 and len(residue) < MAX_RESIDUE:
        try:
            rtype, start, end = _frame(data, offset)
        except CorruptQueueFile:
            residue.append({"offset": offset, "kind": "unparsable", "text": _text(data[offset:offset + 200])})
            return
        if offset not in visited and (rtype == TYPE_NORM or rtype == TYPE_CONT) and end > start:
            residue.append({"offset": offset, "kind": "after-end", "text": _text(data[start:min(end, start + 2048)])})
        offset = end
        count += 1


# ------------------------------------------------------------------ defer/bounce/trace logs
def parse_status_log(data: bytes) -> list[dict]:
    """Blocks of `name=value` lines separated by blank lines [PF src/global/bounce_log.c]."""
    entries = []
    for block in re.split(rb"\n\s*\n", data):
        entry: dict[str, str] = {}
        for line in block.splitlines():
            name, sep, value = line.partition(b"=")
            if sep and re.fullmatch(rb"[a-z_]+", name):
                entry.setdefault(name.decode(), value.decode("utf-8", "backslashreplace"))
            elif line.startswith(b"<") and b">: " in line and "legacy" not in entry:
                addr, _, reason = line[1:].partition(b">: ")
                entry["legacy"] = reason.decode("utf-8", "backslashreplace")
                entry.setdefault("recipient", addr.decode("utf-8", "backslashreplace"))
        if entry:
            entries.append(entry)
    return entries


# ------------------------------------------------------------------ reader interface
def detect(root: Path) -> int:
    """Postfix queue directories plus one file that frames like a queue file."""
    root = Path(root)
    dirs = [name for name in QUEUES + LOG_QUEUES + MARKER_DIRS if (root / name).is_dir()]
    queue_dirs = [name for name in dirs if name in QUEUES]
    if not queue_dirs:
        return 0  # a copy of just deferred/ still counts: the file signature decides
    checked = 0
    for queue in queue_dirs:
        for rel, _name in fsutil.walk_files(root, queue):
            checked += 1
            try:
                head = fsutil.read_file(root, rel, 64)
            except OSError:
                continue
            if _looks_like_queue_file(head):
                return 60
            if checked >= 10:
                break
    # Empty queues: directory names alone are weaker evidence.
    return 20 if len(dirs) >= 4 else 0


def _looks_like_queue_file(head: bytes) -> bool:
    """cleanup's files start with the fixed-width C record, postdrop's with T."""
    if len(head) < 4:
        return False
    if head[0] == TYPE_SIZE:
        return head[1] > 0x40 and head[2:17].strip().isdigit()
    if head[0] == TYPE_TIME:
        return 0 < head[1] < 40 and re.fullmatch(rb"\d+( \d+)?", head[2:2 + head[1]]) is not None
    return False


def _log_index(root: Path) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for log_queue in LOG_QUEUES:
        if not (Path(root) / log_queue).is_dir():
            continue
        for rel, _name in fsutil.walk_files(root, log_queue):
            index.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    return index


def iter_units(root: Path) -> Iterator[QueueUnit]:
    logs = _log_index(root)
    for queue in QUEUES:
        if not (Path(root) / queue).is_dir():
            continue
        for rel, _name in fsutil.walk_files(root, queue):
            name = rel.rsplit("/", 1)[-1]
            yield QueueUnit(id=name, queue=queue, paths=(rel, *sorted(logs.get(name, ()))))


def _mode_details(record: QueuedMessage, st: os.stat_result, queue: str | None) -> None:
    mode = stat.S_IMODE(st.st_mode)
    details = record.details
    details["mode"] = f"{mode:04o}"
    # cleanup creates 0600 and fchmods 0700 when done [PF src/global/mail_stream.c];
    # postdrop finishes maildrop files the same way [PF src/postdrop/postdrop.c].
    details["incomplete"] = (mode & 0o700) != 0o700
    # Postfix never sets "other" bits; with them the mode came from a copy (git keeps
    # only 0644/0755), so the group bits mean nothing and are not reported.
    mode_from_postfix = not mode & 0o007
    details["mode_from_postfix"] = mode_from_postfix
    details["forced_expire"] = mode_from_postfix and bool(mode & stat.S_IXGRP)
    details["flush_after"] = mode_from_postfix and bool(mode & stat.S_IRGRP)
    details["mtime"] = mtime = fsutil.iso_utc(st.st_mtime)
    if queue == "deferred":
        details["next_retry"] = mtime


def _join_logs(root: Path, record: QueuedMessage, paths: tuple[str, ...], parsed: ParsedQueueFile) -> None:
    by_address: dict[str, dict] = {}
    statuses: list[tuple[str, dict]] = []
    for rel in paths:
        kind = rel.split("/", 1)[0]
        try:
            data = fsutil.read_file(root, rel, 1 << 20)
        except OSError as exc:
            record.add_error(f"cannot read {rel}: {exc.strerror or exc}")
            continue
        for entry in parse_status_log(data):
            entry["log"] = kind
            statuses.append((kind, entry))
            addr = entry.get("recipient")
            if addr is not None:
                by_address.setdefault(addr, entry)
    if not statuses:
        return
    record.details["recipient_status"] = {
        entry.get("recipient", "?"): {k: entry[k] for k in ("log", "status", "action", "reason") if k in entry}
        for _kind, entry in statuses
    }
    chosen = None
    for addr in parsed.pending:
        if addr in by_address:
            chosen = by_address[addr]
            break
    if chosen is None:
        chosen = statuses[-1][1]
    record.status = chosen.get("reason") or chosen.get("legacy")


def read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
    rel = unit.paths[0]
    record = QueuedMessage(mta=MTA, id=unit.id, queue=unit.queue, files=list(unit.paths))
    record.details.update(decode_queue_id(unit.id))
    try:
        fd, st = fsutil.open_regular(root, rel)
    except OSError as exc:
        record.add_error(f"cannot read {rel}: {exc.strerror or exc}")
        return record
    try:
        _mode_details(record, st, unit.queue)
        try:
            parsed = parse_queue_file(_load(fd, st.st_size), full)
        except CorruptQueueFile as exc:
            parsed = exc.parsed  # type: ignore[attr-defined]
            if record.details["incomplete"]:
                # still being written (or its writer died): a state, not damage
                record.details["read_stopped"] = str(exc)
            else:
                record.add_error(f"corrupt queue file: {exc}")
        except OSError as exc:
            record.add_error(f"cannot read {rel}: {exc.strerror or exc}")
            return record
    finally:
        os.close(fd)
    _fill(record, parsed, st)
    if parsed.end_offset is None and not record.error and not record.details["incomplete"]:
        record.add_error("corrupt queue file: no end record")
    if parsed.header_cut:
        record.add_error(f"header block longer than {HEAD_READ_LIMIT} bytes; cut there")
    if len(unit.paths) > 1:
        _join_logs(root, record, unit.paths[1:], parsed)
    return record


# details copied from the smtpd/pickup attributes when present
_ATTR_DETAILS = ("sasl_method", "sasl_sender", "reverse_client_name", "rewrite_context", "log_client_address",
                 "log_client_name", "log_helo_name", "protocol_name", "encoding", "create_time")


def _fill(record: QueuedMessage, parsed: ParsedQueueFile, st: os.stat_result) -> None:
    details = record.details
    attrs = parsed.attrs
    record.sender = parsed.sender
    record.recipients = parsed.pending
    record.done_recipients = parsed.done
    fields = parsed.size_fields
    record.size = fields[0] if fields and fields[0] > 0 else st.st_size
    if parsed.arrival is not None:
        record.arrival = fsutil.iso_utc(parsed.arrival)
        details["arrival_source"] = "T"
    elif parsed.create_time is not None:
        record.arrival = fsutil.iso_utc(parsed.create_time)
        details["arrival_source"] = "create_time"
    elif "id_time" in details:
        record.arrival = details["id_time"]
        details["arrival_source"] = "queue id"
    else:
        record.arrival = details["mtime"]
        details["arrival_source"] = "mtime"
    get = attrs.get
    record.client_ip = get("client_address") or get("log_client_address")
    record.client_name = get("client_name") or get("log_client_name")
    record.helo = get("helo_name") or get("log_helo_name")
    if get("sasl_username"):
        record.auth_user = attrs["sasl_username"]
        record.auth_evidence = "spool:sasl_username"
    details["attributes"] = attrs
    for key in _ATTR_DETAILS:
        if key in attrs:
            details[key] = attrs[key]
    if fields:
        details["size_record"] = fields
    if parsed.fullname is not None:
        details["sender_fullname"] = parsed.fullname
    if parsed.original:
        details["original_recipients"] = parsed.original
    if parsed.canceled:
        details["canceled_recipients"] = parsed.canceled
    details["recipient_offsets"] = parsed.recipient_offsets
    if parsed.other:
        details.update(parsed.other)
    if parsed.residue:
        details["residue"] = parsed.residue
    if parsed.create_time is not None and parsed.arrival is None and "create_time" not in details:
        details["create_time"] = parsed.create_time
    lines = parsed.header_lines
    apply_headers(record, parse_header_block(b"\n".join(lines) + b"\n") if lines else [])
    details["records"] = parsed.record_count


def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
    """The message content as RFC 5322 bytes (LF line ends, as postcat -bh prints)."""
    fd, st = fsutil.open_regular(root, unit.paths[0])
    try:
        parsed = parse_queue_file(_load(fd, st.st_size), full=True)
    finally:
        os.close(fd)
    return b"\n".join(parsed.header_lines + [b""] + parsed.body_lines) + b"\n"

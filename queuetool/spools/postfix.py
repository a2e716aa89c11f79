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

REC_SIZE, REC_TIME, REC_CTIME, REC_FULLNAME, REC_INSPECT = b"C", b"T", b"c", b"F", b"I"
REC_FROM, REC_RCPT, REC_DONE, REC_ORCP, REC_DRCP = b"S", b"R", b"D", b"O", b"/"
REC_ATTR, REC_MESG, REC_XTRA, REC_END, REC_PTR, REC_PAD = b"A", b"M", b"X", b"E", b"p", b"w"
REC_NORM, REC_CONT, REC_WARN, REC_REDIRECT, REC_KILLED = b"N", b"L", b"W", b">", b"K"
# Every type byte Postfix writes to a queue file [PF src/global/rec_type.h].
KNOWN_TYPES = frozenset(b"CTcFISRDO/WVA>K<ionMXLNwpErePfdm")

MAX_VARINT_BYTES = 5          # rec_get_raw reads at most sizeof(int) * 8 / 7 length bytes
MAX_ATTRS = 1000              # cleanup keeps <= 100; a file with more is hostile
MAX_RESIDUE = 20              # residue snippets kept per file
BLOCK = 64 * 1024

_LONG_ID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
_B52 = {c: i for i, c in enumerate(_LONG_ID_ALPHABET)}
_LONG_ID = re.compile(r"^([0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{6,})([0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{4})z([0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]+)$")
_SHORT_ID = re.compile(r"^[0-9A-F]{6,}$")


class CorruptQueueFile(Exception):
    """The file breaks the record framing; the message says where and how."""


# ------------------------------------------------------------------ queue ids
def _base(text: str, radix: int) -> int:
    value = 0
    for char in text:
        digit = _B52[char]
        if digit >= radix:
            raise ValueError(char)
        value = value * radix + digit
    return value


def decode_queue_id(queue_id: str) -> dict:
    """What a queue id itself says: long ids carry arrival seconds, usec and inode.

    Long: base-52 seconds, 4 base-52 usec digits, `z`, base-51 inode; short: `%05X`
    usec then hex inode [PF src/global/mail_queue.c mail_queue_enter].
    """
    match = _LONG_ID.match(queue_id)
    if match and len(queue_id) <= 40:
        try:
            seconds = _base(match.group(1), 52)
            usec = _base(match.group(2), 52)
            inode = _base(match.group(3), 51)
        except ValueError:
            return {"id_kind": "unknown"}
        out = {"id_kind": "long", "id_inode": inode, "id_usec": usec}
        when = fsutil.iso_utc(seconds)
        if when:
            out["id_time"] = when
        return out
    if _SHORT_ID.match(queue_id) and len(queue_id) <= 40:
        return {"id_kind": "short", "id_usec": int(queue_id[:5], 16), "id_inode": int(queue_id[5:], 16)}
    return {"id_kind": "unknown"}


# ------------------------------------------------------------------ record reading
class QueueFileReader:
    """Random access to one open queue file in cached blocks (no reads past EOF)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._blocks: dict[int, bytes] = {}

    def _block(self, number: int) -> bytes:
        block = self._blocks.get(number)
        if block is None:
            os.lseek(self.fd, number * BLOCK, os.SEEK_SET)
            block = os.read(self.fd, BLOCK)
            self._blocks[number] = block
        return block

    def read(self, offset: int, count: int) -> bytes:
        number, start = divmod(offset, BLOCK)
        if start + count <= BLOCK and offset < self.size:  # the common case: one block
            return self._block(number)[start:start + count]
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

    def record_at(self, offset: int, limit: int | None = None) -> tuple[bytes, bytes, int]:
        """(type, payload, next offset) of the record at `offset` [PF record.c rec_get_raw].

        `limit` caps how much of the payload is read (the offset still moves past all of it).
        """
        head = self.read(offset, 1 + MAX_VARINT_BYTES)
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
        if start + length > self.size:
            raise CorruptQueueFile(
                f"record {head[:1]!r} at offset {offset} claims {length} bytes; file ends at {self.size}")
        return head[:1], self.read(start, length if limit is None else min(length, limit)), start + length


@dataclass
class ParsedQueueFile:
    """Everything read from one queue file, in the reader's terms."""

    size_fields: list[int] = field(default_factory=list)
    arrival: float | None = None
    create_time: float | None = None
    sender: str | None = None
    fullname: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    recipients: list[dict] = field(default_factory=list)
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


def _pointer(payload: bytes, reader: QueueFileReader, offset: int) -> int:
    try:
        target = int(payload.strip() or b"0")
    except ValueError:
        raise CorruptQueueFile(f"pointer record at offset {offset} is not a number") from None
    if target < 0 or target >= reader.size:
        raise CorruptQueueFile(f"pointer record at offset {offset} points outside the file ({target})")
    return target


class _Walker:
    """Follows records in logical order: `p` pointers, never visiting an offset twice."""

    def __init__(self, reader: QueueFileReader, parsed: ParsedQueueFile, limit: int | None) -> None:
        self.reader = reader
        self.parsed = parsed
        self.limit = limit
        self.visited: set[int] = set()

    def next(self, offset: int) -> tuple[bytes, bytes, int, int]:
        """(type, payload, record offset, next offset), following non-zero pointers."""
        while True:
            if offset in self.visited:
                raise CorruptQueueFile(f"pointer loop at offset {offset}")
            self.visited.add(offset)
            rtype, payload, nxt = self.reader.record_at(offset, self.limit)
            self.parsed.record_count += 1
            if rtype == REC_PTR:
                target = _pointer(payload, self.reader, offset)
                if target == 0:
                    offset = nxt
                    continue
                if self._inside_content(offset) and self._inside_content(target) and target > nxt:
                    self._skipped(nxt, target)
                offset = target
                continue
            if rtype == REC_PAD:
                offset = nxt
                continue
            return rtype, payload, offset, nxt

    def _inside_content(self, offset: int) -> bool:
        fields = self.parsed.size_fields
        start = self.parsed.content_start
        return start is not None and len(fields) >= 2 and start <= offset < fields[1] + fields[0]

    def _skipped(self, start: int, end: int) -> None:
        """Content bytes a pointer jumps over: a header deleted by a milter keeps its
        bytes, only its first 17 become a pointer [PF src/cleanup/cleanup_milter.c]."""
        if len(self.parsed.residue) >= MAX_RESIDUE:
            return
        chunk = self.reader.read(start, min(end - start, 2048))
        self.parsed.residue.append({"offset": start, "kind": "skipped", "text": _text(chunk)})


def _envelope_record(parsed: ParsedQueueFile, rtype: bytes, payload: bytes, offset: int,
                     pending_orig: list, pending_dsn: dict) -> None:
    if rtype == REC_SIZE:
        if not parsed.size_fields:
            parsed.size_fields = [int(x) for x in payload.split()[:6] if x.isdigit()]
    elif rtype == REC_TIME:
        parts = payload.split()
        if parts and parts[0].isdigit():
            usec = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            parsed.arrival = int(parts[0]) + min(usec, 999999) / 1e6
    elif rtype == REC_CTIME:
        if payload.strip().isdigit():
            parsed.create_time = int(payload.strip())
    elif rtype == REC_FROM:
        if parsed.sender is None:
            parsed.sender = _text(payload)
    elif rtype == REC_FULLNAME:
        parsed.fullname = _text(payload)
    elif rtype == REC_ATTR:
        name, sep, value = payload.partition(b"=")
        key = _text(name)
        if not sep:
            return
        if key == "create_time" and parsed.create_time is None and value.isdigit():
            parsed.create_time = int(value)
        if key in ("dsn_orig_rcpt", "notify_flags"):
            pending_dsn[key] = _text(value)
        elif len(parsed.attrs) < MAX_ATTRS and key not in parsed.attrs:
            parsed.attrs[key] = _text(value)
    elif rtype == REC_ORCP:
        pending_orig[:] = [_text(payload)]
    elif rtype in (REC_RCPT, REC_DONE, REC_DRCP):
        state = {REC_RCPT: "pending", REC_DONE: "done", REC_DRCP: "canceled"}[rtype]
        entry = {"address": _text(payload), "state": state, "offset": offset}
        if pending_orig:
            entry["original"] = pending_orig[0]
        entry.update(pending_dsn)
        parsed.recipients.append(entry)
        pending_orig.clear()
        pending_dsn.clear()
    elif rtype == REC_REDIRECT:
        parsed.other["redirect_to"] = _text(payload)
    elif rtype == REC_WARN:
        parsed.other["warning_time"] = _text(payload.strip())
    elif rtype in (b"P", b"V", b"r", b"e", b"I", REC_CONT, REC_KILLED):
        name = {b"P": "priority", b"V": "verp_delimiters", b"r": "return_receipt", b"e": "errors_to",
                b"I": "content_inspector", REC_CONT: "content_filter", REC_KILLED: "killed_record"}[rtype]
        parsed.other.setdefault(name, _text(payload))


def parse_queue_file(reader: QueueFileReader, full: bool) -> ParsedQueueFile:
    """Read envelope, (header or whole) content and the extracted segment.

    Raises CorruptQueueFile with what is known so far in `exc.parsed`.
    """
    parsed = ParsedQueueFile()
    try:
        _parse(reader, parsed, full)
    except CorruptQueueFile as exc:
        exc.parsed = parsed  # type: ignore[attr-defined]
        raise
    return parsed


def _parse(reader: QueueFileReader, parsed: ParsedQueueFile, full: bool) -> None:
    # header-only reads never hold more than HEAD_READ_LIMIT of one record
    walker = _Walker(reader, parsed, None if full else HEAD_READ_LIMIT)
    pending_orig: list = []
    pending_dsn: dict = {}
    offset = 0
    first = True
    # envelope segment
    while True:
        rtype, payload, at, offset = walker.next(offset)
        if first and rtype[0] not in KNOWN_TYPES:
            raise CorruptQueueFile(f"not a Postfix queue file (first record type {rtype!r})")
        first = False
        if rtype == REC_MESG:
            break
        if rtype == REC_END:
            parsed.end_offset = at
            return
        _envelope_record(parsed, rtype, payload, at, pending_orig, pending_dsn)
    parsed.content_start = offset
    offset = _read_content(reader, walker, parsed, offset, full)
    # extracted segment (recipients may be here too), up to E
    while True:
        rtype, payload, at, offset = walker.next(offset)
        if rtype == REC_END:
            parsed.end_offset = at
            break
        if rtype in (REC_NORM, REC_MESG):
            raise CorruptQueueFile(f"unexpected {rtype!r} record at offset {at} after the content")
        _envelope_record(parsed, rtype, payload, at, pending_orig, pending_dsn)
    _heap_residue(reader, walker, parsed, offset)


def _read_content(reader: QueueFileReader, walker: _Walker, parsed: ParsedQueueFile, offset: int,
                  full: bool) -> int:
    """Join N/L records into lines; returns the offset of the X record's successor."""
    partial: list[bytes] = []
    in_header = True
    header_bytes = 0
    while True:
        rtype, payload, at, nxt = walker.next(offset)
        if rtype == REC_XTRA:
            if partial:
                (parsed.header_lines if in_header else parsed.body_lines).append(b"".join(partial))
            if in_header:
                parsed.header_complete = True
            return nxt
        if rtype == REC_CONT:
            partial.append(payload)
            offset = nxt
            header_bytes += len(payload)
            if in_header and header_bytes > HEAD_READ_LIMIT and not full:
                parsed.header_cut = True
                return _skip_to_extracted(reader, walker, parsed, offset)
            continue
        if rtype != REC_NORM:
            raise CorruptQueueFile(f"unexpected record {rtype!r} at offset {at} inside the message content")
        line = b"".join(partial) + payload if partial else payload
        partial = []
        offset = nxt
        if in_header:
            if line == b"" or (line[:1] not in (b" ", b"\t") and b":" not in line):
                in_header = False
                parsed.header_complete = True
                if line != b"":
                    parsed.body_lines.append(line)
                if not full:
                    return _skip_to_extracted(reader, walker, parsed, offset)
                continue
            parsed.header_lines.append(line)
            header_bytes += len(payload) + 1
            if header_bytes > HEAD_READ_LIMIT and not full:
                parsed.header_cut = True
                return _skip_to_extracted(reader, walker, parsed, offset)
        else:
            parsed.body_lines.append(line)


def _skip_to_extracted(reader: QueueFileReader, walker: _Walker, parsed: ParsedQueueFile, offset: int) -> int:
    """Seek past the body with the C record: X sits at data_offset + content size."""
    fields = parsed.size_fields
    if len(fields) >= 2 and fields[0] > 0:
        target = fields[1] + fields[0]
        if 0 < target < reader.size:
            try:
                rtype, _payload, nxt = reader.record_at(target, 0)
            except CorruptQueueFile:
                rtype = b""
            if rtype == REC_XTRA:
                walker.visited.add(target)
                return nxt
    # No usable size record (maildrop files have none): walk the rest of the content.
    while True:
        rtype, _payload, at, nxt = walker.next(offset)
        if rtype == REC_XTRA:
            return nxt
        if rtype not in (REC_NORM, REC_CONT):
            raise CorruptQueueFile(f"unexpected record {rtype!r} at offset {at} inside the message content")
        offset = nxt


def _heap_residue(reader: QueueFileReader, walker: _Walker, parsed: ParsedQueueFile, offset: int) -> None:
    """Records after E that no pointer reached: earlier versions of edited headers."""
    count = 0
    while offset < reader.size and count < 10000 and len(parsed.residue) < MAX_RESIDUE:
        try:
            rtype, payload, nxt = reader.record_at(offset, 2048)
        except CorruptQueueFile:
            parsed.residue.append({"offset": offset, "kind": "unparsable",
                                   "text": _text(reader.read(offset, 200))})
            return
        if offset not in walker.visited and rtype in (REC_NORM, REC_CONT) and payload:
            parsed.residue.append({"offset": offset, "kind": "after-end", "text": _text(payload[:2048])})
        offset = nxt
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
        for rel, _entry in fsutil.walk_files(root, queue):
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
    if head[:1] == REC_SIZE:
        return head[1] > 0x40 and head[2:17].strip().isdigit()
    if head[:1] == REC_TIME:
        return 0 < head[1] < 40 and re.fullmatch(rb"\d+( \d+)?", head[2:2 + head[1]]) is not None
    return False


def _log_index(root: Path) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for log_queue in LOG_QUEUES:
        if not (Path(root) / log_queue).is_dir():
            continue
        for rel, _entry in fsutil.walk_files(root, log_queue):
            index.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    return index


def iter_units(root: Path) -> Iterator[QueueUnit]:
    logs = _log_index(root)
    for queue in QUEUES:
        if not (Path(root) / queue).is_dir():
            continue
        for rel, _entry in fsutil.walk_files(root, queue):
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
    details["mtime"] = fsutil.iso_utc(st.st_mtime)
    if queue == "deferred":
        details["next_retry"] = fsutil.iso_utc(st.st_mtime)


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
    pending = [r["address"] for r in parsed.recipients if r["state"] == "pending"]
    chosen = None
    for addr in pending:
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
        reader = QueueFileReader(fd, st.st_size)
        try:
            parsed = parse_queue_file(reader, full)
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
    _join_logs(root, record, unit.paths[1:], parsed)
    return record


def _fill(record: QueuedMessage, parsed: ParsedQueueFile, st: os.stat_result) -> None:
    details = record.details
    attrs = parsed.attrs
    record.sender = parsed.sender
    record.recipients = [r["address"] for r in parsed.recipients if r["state"] == "pending"]
    record.done_recipients = [r["address"] for r in parsed.recipients if r["state"] == "done"]
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
        record.arrival = fsutil.iso_utc(st.st_mtime)
        details["arrival_source"] = "mtime"
    record.client_ip = attrs.get("client_address") or attrs.get("log_client_address")
    record.client_name = attrs.get("client_name") or attrs.get("log_client_name")
    record.helo = attrs.get("helo_name") or attrs.get("log_helo_name")
    if attrs.get("sasl_username"):
        record.auth_user = attrs["sasl_username"]
        record.auth_evidence = "spool:sasl_username"
    details["attributes"] = dict(attrs)
    for key in ("sasl_method", "sasl_sender", "reverse_client_name", "rewrite_context", "log_client_address",
                "log_client_name", "log_helo_name", "protocol_name", "encoding", "create_time"):
        if key in attrs:
            details[key] = attrs[key]
    if fields:
        details["size_record"] = fields
    if parsed.fullname is not None:
        details["sender_fullname"] = parsed.fullname
    original = {r["address"]: r["original"] for r in parsed.recipients
                if "original" in r and r["original"] != r["address"]}
    if original:
        details["original_recipients"] = original
    canceled = [r["address"] for r in parsed.recipients if r["state"] == "canceled"]
    if canceled:
        details["canceled_recipients"] = canceled
    details["recipient_offsets"] = {r["address"]: r["offset"] for r in parsed.recipients}
    details.update(parsed.other)
    if parsed.residue:
        details["residue"] = parsed.residue
    if parsed.create_time is not None and parsed.arrival is None and "create_time" not in details:
        details["create_time"] = parsed.create_time
    block = b"\n".join(parsed.header_lines) + b"\n"
    apply_headers(record, parse_header_block(block) if parsed.header_lines else [])
    details["records"] = parsed.record_count


def message_bytes(reader: QueueFileReader) -> bytes:
    """The message content as RFC 5322 bytes (LF line ends, as postcat -bh prints)."""
    parsed = parse_queue_file(reader, full=True)
    lines = parsed.header_lines + [b""] + parsed.body_lines
    return b"\n".join(lines) + b"\n"


def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
    fd, st = fsutil.open_regular(root, unit.paths[0])
    try:
        return message_bytes(QueueFileReader(fd, st.st_size))
    finally:
        os.close(fd)

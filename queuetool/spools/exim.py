"""Exim spools (docs/readers/exim.md; format: research/unix-spool-formats.md §2).

One message is `input/<id>-H` (envelope, options, delivered-tree, recipients, then the
headers, each prefixed by its length and a flag) plus `input/<id>-D` (the body after a
first line `<id>-D`), an optional `input/<id>-J` journal of addresses delivered by an
interrupted attempt, and `msglog/<id>` (per-message log) [EX@4.96 spool_out.c,
spool_in.c]. With `split_spool_directory` each lives in a subdirectory named by the 6th
id character; Exim looks in both places, so do we.
"""
from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .. import fsutil
from ..headers import apply_headers, decode_bytes, parse_header_block
from ..model import QueuedMessage, QueueUnit
from . import dir_listing

MTA = "exim"
INPUT_DIRS = ("input", "Finput")      # Finput: move_frozen_messages [EX@4.96 deliver.c]
MSGLOG_DIRS = ("msglog", "Fmsglog")
# 4.96 and older: tttttt-pppppp-ss; 4.97+: tttttt-ppppppppppp-ssss [EX@HEAD local_scan.h]
_ID = r"[0-9A-Za-z]{6}-(?:[0-9A-Za-z]{6}-[0-9A-Za-z]{2}|[0-9A-Za-z]{11}-[0-9A-Za-z]{4})"
_SPOOL_NAME = re.compile(rf"^({_ID})-([HDJ])$")
_MSGLOG_NAME = re.compile(rf"^({_ID})$")
_HEADER_PREFIX = re.compile(rb"(\d{3,9})(.) ")
_B62 = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")}

H_READ_LIMIT = 8 * 1024 * 1024       # header_maxsize defaults to 1 MB; -H adds the envelope
J_READ_LIMIT = 1024 * 1024
MSGLOG_TAIL = 64 * 1024              # the last attempts are at the end of the msglog
MAX_RECIPIENTS = 16384               # spool_in.c refuses more [EX@4.96 spool_in.c]
MAX_OPTIONS = 2000
MAX_TREE_NODES = 100000
DETECT_SAMPLE = 8
# Header flags Exim writes [EX@4.96 macros.h htype_*]; '*' = deleted/rewritten, kept in
# the file but never transmitted.
HEADER_FLAGS = {" ": "other", "B": "bcc", "C": "cc", "F": "from", "I": "message-id", "P": "received",
                "R": "reply-to", "S": "sender", "T": "to", "*": "deleted"}


def id_time(message_id: str) -> int | None:
    """Arrival seconds encoded in the first six base-62 id characters."""
    value = 0
    for char in message_id[:6]:
        if char not in _B62:
            return None
        value = value * 62 + _B62[char]
    return value


def data_start_offset(message_id: str) -> int:
    """SPOOL_DATA_START_OFFSET: the `<id>-D\\n` line that starts every -D file."""
    return len(message_id) + 3


def format_size(size: int) -> str:
    """Size as `exim -bp` prints it [EX string.c string_format_size]."""
    if size == 0:
        return "     "
    if size < 1024:
        return "%5d" % size
    if size < 10 * 1024:
        return "%4.1fK" % (size / 1024.0)
    if size < 1024 * 1024:
        return "%4dK" % ((size + 512) // 1024)
    if size < 10 * 1024 * 1024:
        return "%4.1fM" % (size / (1024.0 * 1024.0))
    return "%4dM" % ((size + 512 * 1024) // (1024 * 1024))


def parse_host_address(value: str) -> tuple[str | None, int | None]:
    """`[ip]:port` (4.96+) or `ip.port` (4.95 and older) -> (ip, port)."""
    value = value.strip()
    if value.startswith("["):
        ip, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return ip or None, int(port) if port.isdigit() and len(port) <= 5 else None
    ip, dot, port = value.rpartition(".")
    if dot and ip and port.isdigit() and len(port) <= 5:
        return ip, int(port)
    return value or None, None


# ------------------------------------------------------------------ -H parsing
@dataclass
class Recipient:
    address: str
    errors_to: str | None = None
    orcpt: str | None = None
    dsn_flags: int | None = None
    pno: int | None = None


@dataclass
class HeaderFile:
    """What an -H file says, in file order; `problems` are format errors found."""

    first_line: str = ""
    login: str | None = None
    uid: int | None = None
    gid: int | None = None
    sender: str | None = None
    received: int | None = None
    warning_count: int | None = None
    options: dict[str, object] = field(default_factory=dict)
    tainted: list[str] = field(default_factory=list)
    acl_vars: dict[str, str] = field(default_factory=dict)
    nonrecipients: list[str] = field(default_factory=list)
    recipients: list[Recipient] = field(default_factory=list)
    headers: list[tuple[str, bytes]] = field(default_factory=list)   # (flag, raw bytes)
    problems: list[str] = field(default_factory=list)


def _text(raw: bytes) -> str:
    """decode_bytes, inlined: most spool text is plain UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return decode_bytes(raw)


def _int(raw: bytes | str) -> int | None:
    if raw.isdigit() and len(raw) < 20:  # the usual plain number (bytes: ASCII digits only)
        return int(raw)
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    if text[:1] == "-":
        return -int(text[1:]) if text[1:].isdigit() and len(text) < 20 else None
    return int(text) if text.isdigit() and len(text) < 20 else None


def _take_length_field(rest: str) -> tuple[str, str | None, int | None]:
    """Cut a trailing `<value> <len>,<number>` field off a recipient line.

    Returns (what is left, the value or None, the number or None when there is no field).
    """
    match = _RCPT_LEN_FIELD.search(rest)
    if not match:
        return rest, None, None
    length, number = int(match.group(1)), int(match.group(2))
    rest = rest[:match.start()]
    value = None
    if 0 < length <= len(rest):
        value = rest[len(rest) - length:]
        rest = rest[:len(rest) - length]
    return (rest[:-1] if rest.endswith(" ") else rest), value, number


def parse_recipient(line: bytes) -> Recipient:
    """One recipient line, parsed from the right like spool_in.c does.

    `addr` | `addr orcpt len,dsn_flags errors_to len,pno#flags` (4.x) | `addr pno` |
    `addr d,pno,d` (Exim 3). Lengths delimit the optional fields.
    """
    line = line.rstrip(b" \t\r")
    if line[-1:].isalpha() or line[-1:] in (b">", b"]", b"."):  # fast path: plain address
        return Recipient(address=_text(line))
    text = _text(line)
    match = _RCPT_FLAGS.search(text)
    if match:
        flags = int(match.group(1))
        rest = text[:match.start()]
        rcpt = Recipient(address=rest)
        if flags & 0x01:
            rest, rcpt.errors_to, rcpt.pno = _take_length_field(rest)
        if flags & 0x02:
            rest, rcpt.orcpt, rcpt.dsn_flags = _take_length_field(rest)
        rcpt.address = rest
        return rcpt
    match = _RCPT_EXIM3.search(text)  # Exim 3: addr d,pno,d
    if match:
        return Recipient(address=text[:match.start()], pno=int(match.group(1)))
    match = _RCPT_LEGACY.search(text)                      # legacy: addr pno
    if match:
        return Recipient(address=text[:match.start()], pno=int(match.group(1)))
    return Recipient(address=text)


_RCPT_FLAGS = re.compile(r"#(\d{1,6})$")
_RCPT_LEN_FIELD = re.compile(r" (\d{1,9}),(-?\d{1,9})$")
_RCPT_EXIM3 = re.compile(r" \d{1,9},(-?\d{1,9}),\d{1,9}$")
_RCPT_LEGACY = re.compile(r" (\d{1,9})$")
_ACL_PREFIX = {"aclc": "acl_c", "aclm": "acl_m", "acl": "acl_"}
_OPTION_BLOCK = re.compile(rb"(?:-[^\n]*\n)*")   # the option lines, up to the first other line


def _parse_acl(hf: HeaderFile, data: bytes, pos: int, name: str, line: bytes, value_raw: bytes) -> int:
    """`-aclc <name> <len>` + `<len>` bytes + newline (the value may hold newlines)
    [EX acl.c, spool_in.c]; returns the position after it."""
    parts = value_raw.split(b" ")
    var, length = (parts[0], _int(parts[1])) if len(parts) == 2 else (b"?", None)
    if length is None:
        hf.problems.append(f"bad {name} line {_text(line[:60])!r}")
        return pos
    if length < 0 or pos + length > len(data):
        hf.problems.append(f"{name} {_text(var)}: value length {length} runs off the end")
        return len(data)
    value = data[pos:pos + length]
    pos += length
    if data[pos:pos + 1] != b"\n":
        hf.problems.append(f"{name} {_text(var)}: value length {length} runs off the end")
        return min(pos + 1, len(data))
    hf.acl_vars[_ACL_PREFIX[name] + _text(var)] = _text(value)
    return pos + 1


def _parse_options(hf: HeaderFile, data: bytes, pos: int) -> int:
    """The `-name [value]` lines from `pos`; returns the position after them, or -1
    when they run off the end. `--name` marks a tainted value, `--(quoter)name` a
    quoted one."""
    options, tainted_names, find = hf.options, hf.tainted, data.find
    end = _OPTION_BLOCK.match(data, pos).end()
    block = data[pos:end]
    if block.isascii() and b"acl" not in block and block.count(b"\n") < MAX_OPTIONS:
        # the usual block: plain ASCII `-name [value]` lines, no byte-counted ACL values
        for line in block.decode("ascii").split("\n")[:-1]:
            tainted = line[1:2] == "-"
            body = line[2:] if tainted else line[1:]
            if body[:1] == "(":
                close = body.find(")")
                body = body[close + 1:] if close > 0 else body
            name, sep, value = body.partition(" ")
            options[name] = value if sep else True
            if tainted:
                tainted_names.append(name)
        if data[end:end + 1] == b"-":  # an option line without its newline
            hf.problems.append("option lines run off the end")
            return -1
        return end
    size = len(data)
    while pos < size and data[pos] == 0x2D:  # '-'
        end = find(b"\n", pos)
        if end < 0:
            hf.problems.append("option lines run off the end")
            return -1
        line = data[pos:end]
        pos = end + 1
        tainted = line[1:2] == b"-"
        body = line[2:] if tainted else line[1:]
        if body[:1] == b"(":
            close = body.find(b")")
            body = body[close + 1:] if close > 0 else body
        name_raw, sep, value_raw = body.partition(b" ")
        name = name_raw.decode("ascii", "backslashreplace")
        if name[:3] == "acl" and name in _ACL_PREFIX:
            pos = _parse_acl(hf, data, pos, name, line, value_raw)
            continue
        if len(options) >= MAX_OPTIONS:
            if len(options) == MAX_OPTIONS:
                hf.problems.append(f"more than {MAX_OPTIONS} option lines; the rest ignored")
                options["..."] = True
            continue
        if sep:
            try:
                options[name] = value_raw.decode("utf-8")
            except UnicodeDecodeError:
                options[name] = decode_bytes(value_raw)
        else:
            options[name] = True
        if tainted:
            tainted_names.append(name)
    return pos


def _parse_tree(hf: HeaderFile, data: bytes, pos: int) -> int:
    """The delivered ("non-recipients") tree: `XX`, or preorder `<Y|N><Y|N> address`
    lines; returns the position after it (the end of data after a problem)."""
    if data.startswith(b"XX\n", pos):  # nothing delivered: the usual case
        return pos + 3
    pending = 1
    while pending > 0:
        end = data.find(b"\n", pos)
        if end < 0:
            hf.problems.append("delivered-address tree runs off the end")
            return -1
        line = data[pos:end]
        pos = end + 1
        pending -= 1
        if line == b"XX" and not hf.nonrecipients:
            return pos
        if len(line) < 3 or line[0:1] not in b"YN" or line[1:2] not in b"YN" or line[2:3] != b" ":
            hf.problems.append(f"bad delivered-tree line {_text(line[:60])!r}")
            return pos
        hf.nonrecipients.append(_text(line[3:]))
        pending += (line[0:1] == b"Y") + (line[1:2] == b"Y")
        if len(hf.nonrecipients) > MAX_TREE_NODES:
            hf.problems.append("delivered-address tree too large")
            return pos
    return pos


# `%03d%c ` at a line start: where Exim's header prefixes are in a well-formed -H file
_HEADER_LINE_PREFIX = re.compile(rb"(?m)^(\d{3})([^\d\n]) ")


def _parse_headers(hf: HeaderFile, data: bytes, pos: int) -> None:
    """`NNNf ` + NNN bytes per header (NNN the length, f the flag), to the end.

    One C-level split at the line-start prefixes; when every piece is exactly as long
    as its prefix says, that is what the header-by-header walk would find. Anything
    else (a 4-digit length, a bad prefix, a length that lies) takes the walk.
    """
    parts = _HEADER_LINE_PREFIX.split(data[pos:])
    if len(parts) > 1 and not parts[0]:
        texts = parts[3::3]
        if list(map(len, texts)) == list(map(int, parts[1::3])):
            hf.headers.extend(zip(b"".join(parts[2::3]).decode("latin-1"), texts))
            return
    _walk_headers(hf, data, pos)


def _walk_headers(hf: HeaderFile, data: bytes, pos: int) -> None:
    """_parse_headers one header at a time, saying where and how the format breaks."""
    headers, size = hf.headers, len(data)
    while pos < size:
        # the common `%03d%c ` prefix without the regex; anything else goes through it
        flag_byte = data[pos + 3:pos + 4]
        if (data[pos + 4:pos + 5] == b" " and data[pos:pos + 3].isdigit()
                and flag_byte and not flag_byte.isdigit() and flag_byte != b"\n"):
            length = int(data[pos:pos + 3])
            flag = chr(flag_byte[0])
            start = pos + 5
        else:
            match = _HEADER_PREFIX.match(data, pos)
            if not match:
                hf.problems.append(f"bad header prefix at byte {pos}")
                return
            length = int(match.group(1))
            flag = match.group(2).decode("latin-1")
            start = match.end()
        if start + length > size:
            hf.problems.append(f"header at byte {pos}: length {length} runs off the end")
            headers.append((flag, data[start:]))
            return
        pos = start + length
        headers.append((flag, data[start:pos]))


def parse_header_file(data: bytes) -> HeaderFile:
    """Parse an -H file without raising; format errors land in `problems`.

    One pass with a position over the bytes (no per-line objects): the envelope
    lines, options, delivered tree, recipients, then the length-prefixed headers.
    """
    hf = HeaderFile()
    problems, find = hf.problems, data.find
    end = find(b"\n")
    if end < 0:
        problems.append("empty or truncated -H file")
        return hf
    hf.first_line = _text(data[:end][:100])
    pos = end + 1
    end = find(b"\n", pos)
    if end >= 0:
        parts = data[pos:end].rsplit(b" ", 2)
        pos = end + 1
        if len(parts) == 3:
            hf.login, hf.uid, hf.gid = _text(parts[0]), _int(parts[1]), _int(parts[2])
        else:
            problems.append("bad originator line")
    end = find(b"\n", pos)
    if end < 0:
        problems.append("truncated before the sender line")
        return hf
    sender_text = _text(data[pos:end].strip())
    pos = end + 1
    if sender_text.startswith("<") and sender_text.endswith(">"):
        hf.sender = sender_text[1:-1]
    else:
        problems.append("sender line is not <address>")
        hf.sender = sender_text
    end = find(b"\n", pos)
    if end < 0:
        problems.append("truncated before the time line")
        return hf
    parts = data[pos:end].split()
    pos = end + 1
    hf.received = _int(parts[0]) if parts else None
    hf.warning_count = _int(parts[1]) if len(parts) > 1 else None
    if hf.received is None:
        problems.append("bad received-time line")
    pos = _parse_options(hf, data, pos)
    if pos < 0:
        return hf
    pos = _parse_tree(hf, data, pos)
    if pos < 0:
        pos = len(data)
    end = find(b"\n", pos)
    count = _int(data[pos:end]) if end >= 0 else None
    if count is None or count < 0 or count > MAX_RECIPIENTS:
        problems.append("bad recipient count" if end >= 0 else "truncated before recipients")
        return hf
    pos = end + 1
    recipients = hf.recipients
    lines = data[pos:].split(b"\n", count)
    if len(lines) <= count:
        recipients.extend(map(parse_recipient, lines[:-1]))
        problems.append(f"recipient list runs off the end ({len(recipients)} of {count})")
        return hf
    recipients.extend(map(parse_recipient, lines[:count]))
    pos = len(data) - len(lines[count])
    if data[pos:pos + 1] != b"\n":
        problems.append("no blank line before the headers")
        return hf
    _parse_headers(hf, data, pos + 1)
    return hf


# ------------------------------------------------------------------ msglog
_MSGLOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4})?) (.*)$")
_STATUS_HINTS = (" defer (", "** ", "SMTP error", "frozen", "Frozen", "failed", "retry time", "Connection ")


def parse_msglog(text: str) -> dict:
    """Summary of a msglog: last delivery status line, counts of defers/deliveries."""
    out: dict = {"lines": 0, "defers": 0, "deliveries": 0, "status": None, "status_time": None}
    last_any = None
    for raw in text.splitlines():
        match = _MSGLOG_TIME.match(raw)
        when, body = (match.group(1), match.group(2)) if match else (None, raw)
        if not body.strip():
            continue
        out["lines"] += 1
        if body.startswith("Received from "):
            continue
        if " defer (" in body:
            out["defers"] += 1
        if "transport succeeded" in body or body.startswith("=> "):
            out["deliveries"] += 1
        last_any = (when, body)
        if any(hint in body for hint in _STATUS_HINTS):
            out["status"], out["status_time"] = body, when
    if out["status"] is None and last_any is not None:
        out["status_time"], out["status"] = last_any
    return out


# ------------------------------------------------------------------ layout
def _is_spool_dir(root: Path) -> bool:
    """True for a spool directory (has input/); False when root is an input dir itself."""
    return (root / "input").is_dir() and not (root / "input").is_symlink()


def _sample_header_files(root: Path, rel_dir: str, depth: int = 0) -> Iterator[str]:
    """-H files in rel_dir and its one-character (split spool) subdirectories."""
    for name, is_dir in dir_listing(root / rel_dir if rel_dir else root):  # shared while detecting
        if name.endswith("-H") and _SPOOL_NAME.match(name):
            yield f"{rel_dir}/{name}" if rel_dir else name
        elif depth == 0 and is_dir and len(name) == 1:
            yield from _sample_header_files(root, f"{rel_dir}/{name}" if rel_dir else name, 1)


def _looks_like_header_file(head: bytes, name: str) -> bool:
    lines = head.split(b"\n", 4)
    return (len(lines) >= 4 and lines[0] == name.rsplit("/", 1)[-1].encode()
            and lines[2].startswith(b"<") and lines[3][:1].isdigit())


def detect(root: Path) -> int:
    """An `input/` directory whose -H files start `<id>-H`, `<login uid gid>`, `<sender>`."""
    root = Path(root)
    sample_from = "input" if (root / "input").is_dir() else ""
    checked = hits = 0
    for rel in _sample_header_files(root, sample_from):
        checked += 1
        try:
            if _looks_like_header_file(fsutil.read_file(root, rel, 512), rel):
                hits += 1
        except OSError:
            pass
        if checked >= DETECT_SAMPLE:
            break
    if hits and hits * 2 >= checked:
        return 60 if sample_from else 40
    if sample_from and not checked and (root / "msglog").is_dir() and (root / "db").is_dir():
        return 20  # an empty Exim spool: input/, msglog/, db/
    return 0


_KIND_SHIFT = {"H": 0, "D": 20, "J": 40, "msglog": 60}
_KIND_MASK = (1 << 20) - 1


def iter_units(root: Path) -> Iterator[QueueUnit]:
    """Group -H/-D/-J (any subdirectory) and msglog files by message id.

    The first file of each kind wins (walk order). An id's files are remembered as one
    int of packed directory numbers, not as path strings: at 10^6 messages the
    listing must fit in ~150 MB, not ~900 MB.
    """
    root = Path(root)
    spool_dir = _is_spool_dir(root)
    input_dirs = [d for d in INPUT_DIRS if (root / d).is_dir()] if spool_dir else [""]
    msglog_dirs = [d for d in MSGLOG_DIRS if (root / d).is_dir()] if spool_dir else []
    dirs: list[str] = []               # "dir/" prefixes, numbered from 1
    dir_numbers: dict[str, int] = {}
    found: dict[str, int] = {}

    def note(message_id: str, kind: str, rel: str, name: str) -> None:
        prefix = rel[: len(rel) - len(name)]
        number = dir_numbers.get(prefix)
        if number is None:
            dirs.append(prefix)
            number = dir_numbers[prefix] = len(dirs)
        shift = _KIND_SHIFT[kind]
        packed = found.get(message_id, 0)
        if not (packed >> shift) & _KIND_MASK:
            found[message_id] = packed | (number << shift)

    for input_dir in input_dirs:
        for rel, _name in fsutil.walk_files(root, input_dir):
            name = rel[rel.rfind("/") + 1:]
            match = _SPOOL_NAME.match(name)
            if match:
                note(match.group(1), match.group(2), rel, name)
    if found:
        for msglog_dir in msglog_dirs:
            for rel, _name in fsutil.walk_files(root, msglog_dir):
                name = rel[rel.rfind("/") + 1:]
                match = _MSGLOG_NAME.match(name)
                if match and match.group(1) in found:  # a msglog alone is no unit
                    note(match.group(1), "msglog", rel, name)
    for message_id in sorted(found):
        packed = found[message_id]
        paths = []
        for kind, shift in _KIND_SHIFT.items():
            number = (packed >> shift) & _KIND_MASK
            if number:
                paths.append(dirs[number - 1] + (message_id if kind == "msglog" else f"{message_id}-{kind}"))
        queue = "frozen" if paths[0].split("/", 1)[0] == "Finput" else "queued"
        yield QueueUnit(id=message_id, queue=queue, paths=tuple(paths))


def _unit_file(unit: QueueUnit, kind: str) -> str | None:
    for rel in unit.paths:
        name = rel.rsplit("/", 1)[-1]
        if kind == "msglog":
            if _MSGLOG_NAME.match(name):
                return rel
        elif name == f"{unit.id}-{kind}":
            return rel
    return None


def _unit_files(unit: QueueUnit) -> tuple[str | None, str | None, str | None, str | None]:
    """(-H, -D, -J, msglog) of a unit in one pass; each the first path that fits,
    like `_unit_file` for each kind."""
    h_name, d_name, j_name = f"{unit.id}-H", f"{unit.id}-D", f"{unit.id}-J"
    h_rel = d_rel = j_rel = msglog_rel = None
    for rel in unit.paths:
        name = rel[rel.rfind("/") + 1:]
        if name == h_name:
            if h_rel is None:
                h_rel = rel
        elif name == d_name:
            if d_rel is None:
                d_rel = rel
        elif name == j_name:
            if j_rel is None:
                j_rel = rel
        if msglog_rel is None and _MSGLOG_NAME.match(name):
            msglog_rel = rel
    return h_rel, d_rel, j_rel, msglog_rel


# ------------------------------------------------------------------ records
def read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
    """Header-only: one read of -H and an lstat of -D (its size); -D itself is opened
    only with `full`, the -J journal and msglog only when the unit has them."""
    record = QueuedMessage(mta=MTA, id=unit.id, queue=unit.queue, files=list(unit.paths))
    details = record.details
    details["id_format"] = "4.97+" if len(unit.id) == 23 else "4.96-"
    h_rel, d_rel, j_rel, msglog_rel = _unit_files(unit)
    if h_rel is None:
        record.add_error("no -H file: reception in progress, or a crash left only "
                         + ("-D" if d_rel else "-J" if j_rel else "a msglog"))
        _fill_arrival(record, None)
        return record
    try:
        data = fsutil.read_file(root, h_rel, H_READ_LIMIT + 1)
    except OSError as exc:
        record.add_error(f"{h_rel}: {exc.strerror or exc}")
        _fill_arrival(record, None)
        return record
    if len(data) > H_READ_LIMIT:
        record.add_error(f"{h_rel}: larger than {H_READ_LIMIT} bytes; cut there")
        data = data[:H_READ_LIMIT]
    hf = parse_header_file(data)
    if hf.first_line != f"{unit.id}-H":
        record.add_error(f"{h_rel}: first line is {hf.first_line[:40]!r}, not '{unit.id}-H'")
    for problem in hf.problems[:3]:
        record.add_error(f"{h_rel}: {problem}")
    _fill_envelope(record, hf)
    journal = _read_journal(root, j_rel, record) if j_rel else []
    if hf.nonrecipients or journal:
        done = set(hf.nonrecipients) | set(journal)
        record.recipients = [r.address for r in hf.recipients if r.address not in done]
        record.done_recipients = [r.address for r in hf.recipients if r.address in done]
    else:
        record.recipients = [r.address for r in hf.recipients]
    if journal:
        details["journal_recipients"] = journal
    header_bytes = _fill_headers(record, hf)
    _fill_size(root, record, header_bytes, d_rel)
    if full and d_rel is not None and record.size is not None:
        _check_data_file(root, record, d_rel)
    if msglog_rel:
        _fill_status(root, record, msglog_rel)
    return record


def _fill_arrival(record: QueuedMessage, received: int | None) -> None:
    id_seconds = id_time(record.id)
    seconds = received if received is not None else id_seconds
    record.arrival = fsutil.iso_utc(seconds)
    if id_seconds is not None:
        record.details["id_time"] = record.arrival if id_seconds == seconds else fsutil.iso_utc(id_seconds)


# spool options copied to details as they are: (option, details key)
_OPTION_DETAILS = (("received_protocol", "received_protocol"), ("host_auth", "authenticator"),
                   ("host_auth_pubname", "auth_mechanism"), ("auth_sender", "auth_sender"),
                   ("ident", "ident"), ("active_hostname", "active_hostname"))
# spool flag options (no value) copied to details as True
_FLAG_OPTIONS = ("manual_thaw", "deliver_firsttime", "localerror", "local", "host_lookup_failed",
                 "host_lookup_deferred", "sender_set_untrusted", "spool_file_wireformat", "smtputf8")


def _fill_envelope(record: QueuedMessage, hf: HeaderFile) -> None:
    details, opts = record.details, hf.options
    get = opts.get
    record.sender = hf.sender
    _fill_arrival(record, hf.received)
    details["originator_login"], details["originator_uid"], details["originator_gid"] = hf.login, hf.uid, hf.gid
    details["warning_count"] = hf.warning_count
    value = get("helo_name")
    if isinstance(value, str):
        record.helo = value
    value = get("host_name")
    if isinstance(value, str):
        record.client_name = value
    value = get("host_address")
    if isinstance(value, str):
        record.client_ip, port = parse_host_address(value)
        details["client_port"] = port
        details["host_address_syntax"] = "[ip]:port" if value.startswith("[") else "ip.port"
    value = get("interface_address")
    if isinstance(value, str):
        ip, port = parse_host_address(value)
        details["interface_address"], details["interface_port"] = ip, port
    for name, key in _OPTION_DETAILS:
        value = get(name)
        if isinstance(value, str):
            details[key] = value
    auth_id = get("auth_id")
    auth_id = auth_id if isinstance(auth_id, str) else None
    if auth_id and "host_auth" in opts:
        # set by an SMTP authenticator's server_set_id [EX@4.96 smtp_in.c]
        record.auth_user = auth_id
        record.auth_evidence = "spool:auth_id"
    elif auth_id:
        # local submission: Exim sets $authenticated_id to the caller's login, no SMTP AUTH
        details["local_user"] = auth_id
    if "frozen" in opts:
        record.queue = "frozen"
        frozen_at = _int(opts["frozen"]) if isinstance(opts["frozen"], str) else None
        details["frozen_at"] = fsutil.iso_utc(frozen_at) if frozen_at is not None else None
    for flag in _FLAG_OPTIONS:
        if flag in opts:
            details[flag] = True
    details["spool_options"] = hf.options
    if hf.tainted:
        details["tainted_options"] = hf.tainted
    if hf.acl_vars:
        details["acl_variables"] = hf.acl_vars
    details["nonrecipients"] = hf.nonrecipients
    dsn = [{"address": r.address, "orcpt": r.orcpt, "dsn_flags": r.dsn_flags, "errors_to": r.errors_to, "pno": r.pno}
           for r in hf.recipients if r.orcpt or r.errors_to or r.dsn_flags or (r.pno is not None and r.pno >= 0)]
    if dsn:
        details["recipient_options"] = dsn[:100]


def _read_journal(root: Path, rel: str, record: QueuedMessage) -> list[str]:
    try:
        data = fsutil.read_file(root, rel, J_READ_LIMIT)
    except OSError as exc:
        record.add_error(f"{rel}: {exc.strerror or exc}")
        return []
    return [_text(line) for line in data.split(b"\n") if line.strip()][:MAX_RECIPIENTS]


def _fill_headers(record: QueuedMessage, hf: HeaderFile) -> int:
    """Headers to the record; returns the transmitted header bytes (for the size)."""
    flags = {flag for flag, _ in hf.headers}
    if "*" in flags:
        sent = b"".join([raw for flag, raw in hf.headers if flag != "*"])
        deleted = b"".join([raw for flag, raw in hf.headers if flag == "*"])
    else:
        sent, deleted = b"".join([raw for _, raw in hf.headers]), b""
    apply_headers(record, parse_header_block(sent))
    if deleted:
        record.details["deleted_headers"] = [[name, value] for name, value in parse_header_block(deleted)]
    unknown = flags.difference(HEADER_FLAGS)
    if unknown:
        record.details["unknown_header_flags"] = sorted(unknown)
    return len(sent)


def _fill_size(root: Path, record: QueuedMessage, header_bytes: int, d_rel: str | None) -> None:
    """`exim -bp` size: transmitted header bytes + -D size - data offset + 1 [EX queue.c]."""
    if d_rel is None:
        record.add_error("no -D file (body missing)")
        record.size = header_bytes
        return
    try:
        st = fsutil.file_stat(root, d_rel)
    except OSError as exc:
        record.add_error(f"{d_rel}: {exc.strerror or exc}")
        record.size = header_bytes
        return
    if not stat.S_ISREG(st.st_mode):
        record.add_error(f"{d_rel}: not a regular file")
        record.size = header_bytes
        return
    record.size = header_bytes + max(0, st.st_size - data_start_offset(record.id)) + 1
    record.details["bp_size"] = format_size(record.size)


def _check_data_file(root: Path, record: QueuedMessage, d_rel: str) -> None:
    """`full` reads also check that -D starts with its own `<id>-D` line."""
    try:
        first = fsutil.read_file(root, d_rel, data_start_offset(record.id))
    except OSError as exc:
        record.add_error(f"{d_rel}: {exc.strerror or exc}")
        return
    if first != f"{record.id}-D\n".encode():
        record.add_error(f"{d_rel}: does not start with '{record.id}-D'")


def _fill_status(root: Path, record: QueuedMessage, rel: str) -> None:
    try:
        text = _text(fsutil.read_tail(root, rel, MSGLOG_TAIL))
    except OSError as exc:
        record.add_error(f"{rel}: {exc.strerror or exc}")
        return
    summary = parse_msglog(text)
    record.status = summary["status"][:1000] if summary["status"] else None
    record.details["msglog"] = {k: v for k, v in summary.items() if k != "status"}


def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
    """Transmitted headers (not the `*` ones) + blank line + -D after its first line."""
    root = Path(root)
    h_rel, d_rel = _unit_file(unit, "H"), _unit_file(unit, "D")
    if h_rel is None or d_rel is None:
        raise FileNotFoundError(f"{unit.id}: needs both -H and -D files")
    hf = parse_header_file(fsutil.read_file(root, h_rel, H_READ_LIMIT))
    body = fsutil.read_file(root, d_rel)
    if not body.startswith(f"{unit.id}-D\n".encode()):
        raise ValueError(f"{d_rel}: does not start with '{unit.id}-D'; not this message's body")
    head = b"".join(raw for flag, raw in hf.headers if flag != "*")
    return head + b"\n" + body[data_start_offset(unit.id):]

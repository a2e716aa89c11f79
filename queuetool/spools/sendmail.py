"""Sendmail 8.x queue directories (/var/spool/mqueue): qf/df pairs and their kin.

A unit is every file of one queue id in one queue directory: the control file
(`qf` queued, `hf` quarantined, `Qf` lost), the body `df`, and transient `tf`/`Tf`
(control file being rewritten / stale) and `xf` (delivery transcript). The control
file is line based (doc/op/op.me "QUEUE FILE FORMATS"; queue.c queueup()/readqf()):
one letter per line, lines starting with a space or tab continue the previous one,
`.` ends the file. Only undelivered recipients are written, so `done_recipients`
is always empty. See docs/readers/sendmail.md for what is read from where.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .. import fsutil
from ..headers import apply_headers, decode_bytes, parse_header_block
from ..model import QueuedMessage, QueueUnit
from . import dir_listing

MTA = "sendmail"

CONTROL_PREFIXES = {"qf": "queued", "hf": "quarantined", "Qf": "lost"}
TRANSIENT_PREFIXES = {"tf": "control file being written", "Tf": "stale control file",
                      "xf": "delivery transcript"}
ALL_PREFIXES = ("qf", "hf", "Qf", "df", "tf", "Tf", "xf")
# Optional per-type subdirectories of one queue directory (op.me "Queue directories").
TYPE_SUBDIRS = ("qf", "df", "xf")

# Control files are small (headers + envelope); a larger one is cut and flagged.
CONTROL_READ_LIMIT = 4 * 1024 * 1024
TRANSCRIPT_TAIL = 600
DETECT_SAMPLE = 8

# queue.c assign_queueid(): time fields index this alphabet (base 60, gmtime).
BASE60 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"
_BASE60_VALUE = {char: value for value, char in enumerate(BASE60)}
_YEAR_10000 = 253402300800  # 10000-01-01T00:00:00Z
_ID_8_12 = re.compile(r"^[0-9A-Za-x]{8}\d{6,}$")
_UNIT_NAME = re.compile(r"^(qf|hf|Qf|df|tf|Tf|xf)([0-9A-Za-z]{4,40})$")

# sendmail.h: meta bytes that may appear in stored header values.
MACROEXPAND = 0x81
MACRODEXPAND = 0x82

# Control-file lines kept as they are, by code: I df inode, B body type, q quarantine
# reason, Z envid, ! deliver-by, d data directory.
_PLAIN_FACTS = {"I": "df_inode", "B": "body_type", "q": "quarantine_reason", "Z": "envid",
                "!": "deliver_by", "d": "data_dir"}

# queueup(): the F line's letters.
ENVELOPE_FLAGS = {
    "w": "warning-sent", "r": "response-bounce", "8": "8bit-body", "b": "delete-bcc",
    "d": "ret-param", "n": "no-body-return", "s": "split", "e": "smtputf8",
}

# `$_` = [ident@]host [addr] plus " (may be forged)" (daemon.c getauthinfo, srvrsmtp.c)
_CLIENT_MACRO = re.compile(
    r"^(?:(?P<ident>[^@\s\[]+)@)?(?P<name>[^\s\[]*)\s*(?:\[(?P<addr>[^\]]*)\])?\s*(?P<forged>\(may be forged\))?"
)


# ---------------------------------------------------------------- layout, detection

def _group_dir(rel_dir: str) -> str:
    """The queue directory a file belongs to (qf/, df/, xf/ subdirs fold into it)."""
    parts = rel_dir.split("/") if rel_dir else []
    if parts and parts[-1] in TYPE_SUBDIRS:
        parts = parts[:-1]
    return "/".join(parts)


def _looks_like_control(head: bytes) -> bool:
    """V<n> first (8.x) or at least T/S/R lines, as readqf() expects."""
    if re.match(rb"V\d+\r?\n", head):
        return True
    lines = head.split(b"\n")[:40]
    letters = {line[:1] for line in lines}
    return b"T" in letters and (b"S" in letters or b"R" in letters)


def detect(root: Path) -> int:
    """Claim a directory holding control files (directly or in qf/) that read like qf files."""
    candidates: list[str] = []
    for sub in ("", "qf"):
        # the listing detect_mta shares with the other readers; a prefix test before the
        # regex, as most directories it sees hold no control files at all
        for name, _is_dir in dir_listing(Path(root) / sub if sub else Path(root)):
            if name[:2] in CONTROL_PREFIXES and _UNIT_NAME.match(name):
                candidates.append(f"{sub}/{name}" if sub else name)
            if len(candidates) >= DETECT_SAMPLE:
                break
    hits = 0
    for rel in candidates:
        try:
            if _looks_like_control(fsutil.read_file(root, rel, 512)):
                hits += 1
        except OSError:
            continue
    return 30 if hits and hits * 2 >= len(candidates) else 0


def _unit_order(path: str) -> tuple[int, str]:
    prefix = path.rsplit("/", 1)[-1][:2]
    return (ALL_PREFIXES.index(prefix), path)


def iter_units(root: Path) -> Iterator[QueueUnit]:
    """One unit per (queue directory, queue id); listing only, no content reads.

    Each file is remembered as one small int (its directory's number x 8 + its prefix),
    not as a path string: the whole queue is grouped before the first unit, and at 10^6
    messages that must not cost a gigabyte.
    """
    dirs: list[tuple[str, str]] = []            # ("dir/" prefix, queue directory it folds into)
    dir_numbers: dict[str, int] = {}
    groups: dict[str, dict[str, list[int]]] = {}
    for rel, name in fsutil.walk_files(root):
        match = _UNIT_NAME.match(name)
        if not match:
            continue
        prefix = rel[: len(rel) - len(name)]
        number = dir_numbers.get(prefix)
        if number is None:
            number = dir_numbers[prefix] = len(dirs)
            dirs.append((prefix, _group_dir(prefix[:-1])))
        code = number * 8 + ALL_PREFIXES.index(match.group(1))
        groups.setdefault(dirs[number][1], {}).setdefault(match.group(2), []).append(code)
    for qdir in sorted(groups):
        units = groups[qdir]
        for qid in sorted(units):
            paths = sorted((dirs[code >> 3][0] + ALL_PREFIXES[code & 7] + qid for code in units[qid]),
                           key=_unit_order)
            queue = CONTROL_PREFIXES.get(paths[0].rsplit("/", 1)[-1][:2], "incomplete")
            yield QueueUnit(id=qid, queue=queue, paths=tuple(paths))


# ---------------------------------------------------------------- queue id time

def decode_queue_id_time(qid: str, near_epoch: float | None = None) -> _dt.datetime | None:
    """UTC time encoded in an 8.12+ id `YMDhmsNNpppppp` (year is tm_year mod 60).

    The century is chosen nearest to `near_epoch` (the T line), else nearest to now.
    """
    if not _ID_8_12.match(qid):
        return None
    try:
        year60, month, day, hour, minute, second = [_BASE60_VALUE[c] for c in qid[:6]]
    except KeyError:
        return None
    if month > 11 or not 1 <= day <= 31 or hour > 23 or minute > 59 or second > 60:
        return None
    if near_epoch is None:
        near_year = _dt.datetime.now(_dt.timezone.utc).year
    elif type(near_epoch) is int and 0 <= near_epoch < _YEAR_10000:
        near_year = time.gmtime(near_epoch).tm_year  # same year as datetime, cheaper
    else:
        try:
            near_year = _dt.datetime.fromtimestamp(float(near_epoch), tz=_dt.timezone.utc).year
        except (OverflowError, OSError, ValueError):
            near_year = _dt.datetime.now(_dt.timezone.utc).year
    base = 1900 + year60
    year = base + 60 * round((near_year - base) / 60)
    try:
        return _dt.datetime(year, month + 1, day, hour, minute, min(second, 59), tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


# ---------------------------------------------------------------- control file parsing

_LOGICAL_LINE_END = re.compile(rb"\n(?![ \t])")   # a newline not followed by a continuation


def folded_lines(data: bytes) -> list[bytes]:
    """Lines as readqf's fgetfolded() returns them: continuations joined with \\n."""
    if b"\r" not in data:
        # no CRs to drop: splitting at newlines that do not start a continuation gives
        # the joined lines directly (a leading continuation stays a line of its own)
        lines = _LOGICAL_LINE_END.split(data)
        if lines[-1] == b"":
            lines.pop()
        return lines
    groups: list[list[bytes]] = []
    for line in data.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t") and groups:
            groups[-1].append(line)  # list append: linear even for endless continuations
        else:
            groups.append([line])
    if groups and groups[-1] == [b""]:
        groups.pop()
    return [b"\n".join(parts) for parts in groups]


_XTEXT_HEX = re.compile(r"\+([0-9A-Fa-f]{2})")


def xtext_decode(value: str) -> str:
    """RFC 3461 xtext (+XX hex) as used by the A line."""
    return _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), value)


def expand_meta(value: bytes) -> tuple[bytes, list[str]]:
    """Replace sendmail meta bytes 0x81/0x82 + macro id with `$x` / `${#NN}` text."""
    if MACROEXPAND not in value and MACRODEXPAND not in value:
        return value, []
    out = bytearray()
    macros: list[str] = []
    i = 0
    while i < len(value):
        byte = value[i]
        if byte in (MACROEXPAND, MACRODEXPAND) and i + 1 < len(value):
            ident = value[i + 1]
            name = chr(ident) if 0x21 <= ident < 0x7F else f"{{#{ident:02X}}}"
            macros.append(name)
            out += f"${name}".encode("ascii")
            i += 2
            continue
        out.append(byte)
        i += 1
    return bytes(out), macros


def split_header_line(rest: bytes) -> tuple[str, bytes]:
    """`?flags?Name: value` -> (flags, b"Name: value"); no leading `?` -> ("", rest)."""
    if rest[:1] == b"?":
        end = rest.find(b"?", 1)
        if end > 0:
            return decode_bytes(rest[1:end]), rest[end + 1:]
    return "", rest


def parse_client_macro(value: str) -> dict[str, str | bool | None]:
    match = _CLIENT_MACRO.match(value.strip())
    if not match:
        return {"name": None, "addr": None, "ident": None, "forged": False}
    addr = match.group("addr")
    if addr and addr.upper().startswith("IPV6:"):
        addr = addr[5:]
    name = match.group("name") or None
    return {"name": name, "addr": addr or None, "ident": match.group("ident"),
            "forged": bool(match.group("forged"))}


def _decode(raw: bytes) -> str:
    """decode_bytes, inlined: control files are mostly plain UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return decode_bytes(raw)


def _strip_angles(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        return address[1:-1]
    return address


_EPOCH = re.compile(r"-?\d{1,12}")
_PRIORITY = re.compile(r"-?\d{1,18}")


def _epoch(value: str) -> int | None:
    value = value.strip()
    if not _EPOCH.fullmatch(value):
        return None
    return int(value)


@dataclass
class ControlFile:
    """Everything read from one control file (filled by parse_control)."""

    version: int | None = None
    created: int | None = None
    sender: str | None = None
    recipients: list[dict] = field(default_factory=list)
    header_lines: list[bytes] = field(default_factory=list)
    header_flags: list[tuple[str, str]] = field(default_factory=list)
    macros: dict[str, str] = field(default_factory=dict)
    envelope_status: str | None = None
    statuses: list[str] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    ended: bool = False


def parse_control(data: bytes) -> ControlFile:
    """Parse a qf/hf/Qf/tf body; never raises, oddities go to `problems`."""
    ctl = ControlFile()
    pending: dict[str, str] = {}  # Q, r and a recipient's M apply to the next R only
    controlling_user: str | None = None  # C applies until the next C (bare C resets)
    unknown: list[str] = []
    header_lines, header_flags = ctl.header_lines, ctl.header_flags
    has_meta = MACROEXPAND in data or MACRODEXPAND in data
    line_no = 0
    for line_no, line in enumerate(folded_lines(data), 1):
        if ctl.ended:
            ctl.problems.append(f"data after the '.' end line at line {line_no} (sendmail: SECURITY ALERT)")
            break
        if not line:
            unknown.append("<empty>")
            continue
        if line[0] == 0x48:  # 'H', most lines: headers, kept as bytes for the header parser
            # split_header_line, inlined: `H?flags?Name: value` or `HName: value`
            end = line.find(b"?", 2) if line[1:2] == b"?" else -1
            if end > 0:
                flags = _decode(line[2:end])
                header = line[end + 1:]
            else:
                flags, header = "", line[1:]
            if has_meta:
                header, _ = expand_meta(header)
            header_lines.append(header)
            colon = header.find(b":", 0, 200)
            header_flags.append((_decode(header[:colon] if colon >= 0 else header[:200]).strip(), flags))
            continue
        code, rest = chr(line[0]), line[1:]
        text = _decode(rest)
        # each line type has one branch (distinct codes): the order is for speed only
        if code == "R":
            flags, sep, address = text.partition(":")
            if not sep or (ctl.version is not None and ctl.version < 1):
                flags, address = "", text
            entry = {"address": _strip_angles(address), "flags": flags}
            if controlling_user:
                entry["controlling_user"] = controlling_user
            if pending:
                entry.update(pending)
                pending = {}
            ctl.recipients.append(entry)
        elif code == "$":
            if rest.startswith(b"{"):
                end = rest.find(b"}")
                if end < 0:
                    unknown.append("$" + text[:20])
                    continue
                name, value = decode_bytes(rest[:end + 1]), decode_bytes(rest[end + 1:])
            elif rest:
                name, value = decode_bytes(rest[:1]), decode_bytes(rest[1:])
            else:
                unknown.append("$")
                continue
            ctl.macros[name] = value
        elif code == "V":
            ctl.version = int(text) if text.isdigit() and len(text) < 6 else None
            ctl.facts["version"] = text
        elif code == "T":
            ctl.created = _epoch(text)
        elif code == "K":
            last_attempt = _epoch(text)
            ctl.facts["last_attempt"] = fsutil.iso_utc(last_attempt) if last_attempt else None
        elif code == "N":
            ctl.facts["attempts"] = int(text) if text.isdigit() and len(text) < 10 else text
        elif code == "P":
            ctl.facts["priority"] = int(text) if _PRIORITY.fullmatch(text) else text
        elif code in _PLAIN_FACTS:
            ctl.facts[_PLAIN_FACTS[code]] = text
        elif code == "F":
            ctl.facts["flags"] = text
            ctl.facts["flag_names"] = [ENVELOPE_FLAGS.get(c, c) for c in text]
        elif code == "M":
            if ctl.sender is None and ctl.envelope_status is None:
                ctl.envelope_status = text
            else:
                pending["status"] = text
            ctl.statuses.append(text)
        elif code == "S":
            ctl.sender = _strip_angles(text)
        elif code == "A":
            ctl.facts["auth_param"] = xtext_decode(text)
        elif code == "C":
            controlling_user = text or None
        elif code == "Q":
            pending["orcpt"] = text
        elif code == "r":
            pending["final_rcpt"] = text
        elif code in "ELD":  # legacy lines readqf still accepts
            ctl.facts.setdefault("legacy_lines", []).append(code + text[:80])
        elif code == ".":
            ctl.ended = True
        else:
            unknown.append(code + text[:20])
    if unknown:
        ctl.facts["unknown_lines"] = unknown[:10]
        ctl.problems.append(f"{len(unknown)} line(s) of unknown type (first {unknown[0]!r}); readqf would lose this file")
    return ctl


# ---------------------------------------------------------------- reading a unit

def _control_path(unit: QueueUnit) -> str | None:
    for path in unit.paths:
        prefix = path.rsplit("/", 1)[-1][:2]
        if prefix in CONTROL_PREFIXES or prefix == "tf":
            return path
    return None


def _df_path(unit: QueueUnit) -> str | None:
    for path in unit.paths:
        if path.rsplit("/", 1)[-1][:2] == "df":
            return path
    return None


def _read_control(root: Path, rel: str, record: QueuedMessage) -> tuple[bytes | None, os.stat_result | None]:
    """The control file (at most CONTROL_READ_LIMIT bytes) and its stat, from one open."""
    try:
        data, st = fsutil.read_file_and_stat(root, rel, CONTROL_READ_LIMIT + 1)
    except OSError as exc:
        record.add_error(f"{rel}: cannot read control file: {exc.strerror or exc}")
        return None, None
    if len(data) > CONTROL_READ_LIMIT:
        record.add_error(f"{rel}: control file longer than {CONTROL_READ_LIMIT} bytes; cut there")
        data = data[:CONTROL_READ_LIMIT]
    return data, st


def _apply_client(record: QueuedMessage, macros: dict[str, str]) -> None:
    client = macros.get("_")
    if client is not None:
        info = parse_client_macro(client)
        record.client_ip = info["addr"]  # type: ignore[assignment]
        record.client_name = info["name"]  # type: ignore[assignment]
        if info["ident"]:
            record.details["client_ident"] = info["ident"]
        if info["forged"]:
            record.details["client_name_may_be_forged"] = True
    if "s" in macros:
        record.helo = macros["s"] or None
    if "r" in macros:
        record.details["protocol"] = macros["r"]
        # $r is ESMTPA/ESMTPSA after a successful AUTH (srvrsmtp.c); who is not recorded
        record.details["smtp_authenticated"] = macros["r"].upper().endswith("A")


def read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
    record = QueuedMessage(mta=MTA, id=unit.id, queue=unit.queue, files=list(unit.paths))
    details = record.details
    control_rel = _control_path(unit)
    df_rel = _df_path(unit)
    details["pid"] = int(unit.id[8:]) if _ID_8_12.match(unit.id) else None
    transient = [p for p in unit.paths if p.rsplit("/", 1)[-1][:2] in TRANSIENT_PREFIXES]
    if transient:
        details["transient_files"] = transient

    st = data = None
    if control_rel is None:
        record.add_error("data file without a control file (reception in progress, or the qf was removed)")
    else:
        if control_rel.rsplit("/", 1)[-1][:2] == "tf":
            record.add_error(f"{control_rel}: only a tf (control file being written): incomplete")
        data, st = _read_control(root, control_rel, record)
        if st is not None:
            details["mode"] = f"{stat.S_IMODE(st.st_mode):04o}"
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                details["unsafe_mode"] = True  # readqf: "bogus queue file" -> lost

    ctl = parse_control(data) if data is not None else None
    if ctl is not None:
        _fill_from_control(record, ctl, control_rel, st)

    if df_rel is not None:
        try:
            df_st = fsutil.file_stat(root, df_rel)
        except OSError as exc:
            record.add_error(f"{df_rel}: {exc.strerror or exc}")
        else:
            if stat.S_ISREG(df_st.st_mode):
                record.size = df_st.st_size
            else:
                record.add_error(f"{df_rel}: not a regular file")
    elif ctl is not None and record.queue != "lost" and "data_dir" not in details:
        record.add_error(f"no df file for {unit.id}: body missing")

    for rel in transient:
        if rel.rsplit("/", 1)[-1][:2] == "xf":
            try:
                details["transcript_tail"] = decode_bytes(fsutil.read_tail(root, rel, TRANSCRIPT_TAIL))
            except OSError as exc:
                details["transcript_error"] = str(exc.strerror or exc)
    return record


def _fill_from_control(record: QueuedMessage, ctl: ControlFile, rel: str,
                       st: os.stat_result | None) -> None:
    details = record.details
    details.update(ctl.facts)
    record.sender = ctl.sender
    if ctl.sender and "r" in str(ctl.facts.get("flags", "")):
        # EF_RESPONSE: sendmail's own DSN; smtpmailfrom() sends MAIL FROM:<> (usersmtp.c)
        details["sender_stored"] = ctl.sender
        record.sender = ""
    record.recipients = [r["address"] for r in ctl.recipients]
    if ctl.recipients:
        details["recipient_info"] = ctl.recipients
    record.status = ctl.envelope_status or (ctl.statuses[-1] if ctl.statuses else None)
    if ctl.macros:
        details["macros"] = ctl.macros
    _apply_client(record, ctl.macros)
    if ctl.macros.get("{auth_authen}"):
        record.auth_user = ctl.macros["{auth_authen}"]
        record.auth_evidence = "spool:auth_authen"
    for key in ("{auth_type}", "{auth_author}", "{if_addr}", "{daemon_flags}"):
        if key in ctl.macros:
            details[key.strip("{}")] = ctl.macros[key]

    arrival = ctl.created
    id_time = decode_queue_id_time(record.id, arrival)
    if id_time is not None:
        details["id_time"] = id_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    if arrival is not None:
        record.arrival = fsutil.iso_utc(arrival)
    elif id_time is not None:
        record.arrival = details["id_time"]
        details["arrival_source"] = "queue id"
    elif st is not None:
        record.arrival = fsutil.iso_utc(st.st_mtime)
        details["arrival_source"] = "mtime"

    flagged = {name: flags for name, flags in ctl.header_flags if flags}
    if flagged:
        details["header_flags"] = flagged
    apply_headers(record, parse_header_block(b"\n".join(ctl.header_lines) + b"\n"))

    if ctl.version is None:
        record.add_error(f"{rel}: no V (version) line: not a sendmail 8.x control file or damaged")
    if not ctl.ended and rel.rsplit("/", 1)[-1][:2] != "tf":
        record.add_error(f"{rel}: no '.' end line: truncated or still being written")
    if ctl.sender is None:
        record.add_error(f"{rel}: no S (sender) line")
    for problem in ctl.problems:
        record.add_error(f"{rel}: {problem}")


def message_header_bytes(data: bytes) -> bytes:
    """The stored header block as the smtp mailer would send it (Return-Path left out)."""
    ctl = parse_control(data)
    lines = []
    for (name, flags), header in zip(ctl.header_flags, ctl.header_lines):
        if name.lower() == "return-path" and "P" in flags:
            continue  # added by the final delivery agent only (H?P?, mailer flag P)
        lines.append(header)
    return b"\n".join(lines) + b"\n" if lines else b""


def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
    control_rel = _control_path(unit)
    df_rel = _df_path(unit)
    head = b""
    if control_rel is not None:
        head = message_header_bytes(fsutil.read_file(root, control_rel, CONTROL_READ_LIMIT))
    body = fsutil.read_file(root, df_rel) if df_rel is not None else b""
    return head + b"\n" + body

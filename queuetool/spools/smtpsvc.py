"""Exchange 2000/2003 and IIS SMTP (SMTPSVC) mail folders: Queue, PickUp, Drop, BadMail.

The spool root is one virtual server's folder: `Exchsrvr\\Mailroot\\vsi N\\` or
`Inetpub\\mailroot\\` (research/exchange-formats.md section 2). What is on disk:

- `Queue\\*.EML`: the message content only. The envelope (MAIL FROM, RCPT TO) lived in
  an NTFS property stream that an ordinary copy drops, so `sender`/`recipients` stay
  null/empty and `details["envelope"]` says where to recover them (W3C log, Event 1708).
- `PickUp\\` and `Drop\\` files: the message after leading `x-sender:`/`x-receiver:`
  lines (any case, one receiver line per recipient): that is the envelope.
- `BadMail\\<stem>.BAD/.BDR/.BDP`: one unit. `.BAD` is the message (often an NDR that
  could not be delivered, parsed with queuetool.dsn); `.BDR` is a plain-text reason
  (UTF-16 or ANSI); `.BDP` is an undocumented binary blob, strings-scanned for
  addresses (heuristic evidence only).

Names are matched case-insensitively; files are CRLF text in any case.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import Any, Iterator

from .. import fsutil
from ..dsn import parse_dsn, status_code
from ..headers import HEAD_READ_LIMIT, apply_headers, bare_address, parse_header_block
from ..model import QueuedMessage, QueueUnit
from . import find_body_start, may_be_report, read_into_record, read_message_head
from . import child_dirs, dir_listing, file_head

MTA = "smtpsvc"
QUEUE_DIRS = {"queue": "queue", "pickup": "pickup", "drop": "drop", "badmail": "badmail"}
BADMAIL_SUFFIXES = (".bad", ".bdr", ".bdp")
NOT_MESSAGES = {"desktop.ini", "thumbs.db"}
BADMAIL_READ_LIMIT = 1024 * 1024
BDR_READ_LIMIT = 64 * 1024
BDP_READ_LIMIT = 1024 * 1024
MAX_ENVELOPE_LINES = 10_000
MAX_BDP_ADDRESSES = 200
_DETECT_SAMPLE = 8

ENVELOPE_NOTE = (
    "Queue .EML files hold the content only: Exchange 2000/2003 kept MAIL FROM/RCPT TO "
    "in an NTFS property stream (NTFSDrv) that ordinary copies lose. Recover them from the "
    "IIS W3C log (MAIL/RCPT/DATA lines; DATA carries this Message-ID) and the submitting "
    "account from Application Event 1708 (queuetool trace --log)."
)

# FILETIME: 100 ns ticks since 1601-01-01 UTC.
_FILETIME_EPOCH_OFFSET = 116_444_736_000_000_000
_FILETIME = re.compile(r"FILETIME\s*=\s*\[\s*([0-9A-Fa-f]{1,8})\s*:\s*([0-9A-Fa-f]{1,8})\s*\]")
_SMTPSVC = re.compile(r"Microsoft SMTPSVC\(\s*([0-9.]+)\s*\)", re.IGNORECASE)
_SMTP_SERVER = re.compile(r"Microsoft SMTP Server\b[^;]*?\bid\s+([0-9]+(?:\.[0-9]+)*)", re.IGNORECASE)
_RECEIVED_FROM = re.compile(
    r"^from\s+(\S+)\s+\(([^)]*)\)\s+by\s+(\S+)", re.IGNORECASE
)
_IP_IN_BRACKETS = re.compile(r"\[([0-9A-Fa-f.:]+)\]")
_ENVELOPE_LINE = re.compile(rb"^(x-sender|x-receiver)[ \t]*:[ \t]*(.*?)\r?$", re.IGNORECASE)
_HRESULT = re.compile(r"\b0x[0-9A-Fa-f]{8}\b")
_ASCII_ADDRESS = re.compile(rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_UTF16_ADDRESS = re.compile(
    rb"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]\x00){1,64}@\x00(?:[A-Za-z0-9-]\x00){1,63}(?:\.\x00(?:[A-Za-z0-9-]\x00){1,63})+"
)

EXCHANGE_BUILDS = (  # Microsoft SMTP Server id prefix -> product (2007+)
    ("15.2", "Exchange 2019"), ("15.1", "Exchange 2016"), ("15.0", "Exchange 2013"),
    ("14.", "Exchange 2010"), ("8.", "Exchange 2007"),
)


# ---------------------------------------------------------------- pure helpers

def filetime_to_epoch(value: int) -> float | None:
    """Seconds since 1970 for a Windows FILETIME (100 ns ticks since 1601), or None."""
    if value <= 0 or value >= 1 << 63:
        return None
    return (value - _FILETIME_EPOCH_OFFSET) / 10_000_000


def filetime_to_iso(value: int) -> str | None:
    """ISO-8601 UTC with milliseconds for a FILETIME, or None if out of range."""
    epoch = filetime_to_epoch(value)
    if epoch is None:
        return None
    try:
        when = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=epoch)
    except OverflowError:
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_original_arrival_time(value: str | None) -> str | None:
    """Decode `X-OriginalArrivalTime: ... FILETIME=[low32:high32]` to ISO UTC (ms).

    The FILETIME is printed low word first (verified on real samples); the text part
    before it is only a rendering, so the FILETIME is what counts.
    """
    if not value:
        return None
    match = _FILETIME.search(value)
    if not match:
        return None
    low, high = int(match.group(1), 16), int(match.group(2), 16)
    return filetime_to_iso((high << 32) | low)


def sniff_version(headers: list[tuple[str, str]]) -> dict[str, Any] | None:
    """Which Microsoft server stamped these headers: SMTPSVC (2000/2003) or 2007+.

    `Received: ... with Microsoft SMTPSVC(6.0.3790.x)` and X-OriginalArrivalTime mean
    IIS SMTP / Exchange 2000/2003; `Microsoft SMTP Server id 8/14/15.x` and
    X-MS-Exchange-Organization-* mean Exchange 2007+. None when neither is present.
    """
    saw_arrival_time = saw_org_header = False  # the fallbacks below, noted in the same pass
    for name, value in headers:
        low = name.lower()
        if low != "received":
            if low == "x-originalarrivaltime":
                saw_arrival_time = True
            elif low.startswith("x-ms-exchange-organization-"):
                saw_org_header = True
            continue
        # both signatures hold "microsoft smtp"; the case-insensitive regexes are slow to
        # fail, so ASCII lines without it are skipped (non-ASCII ones: Unicode case folding)
        if value.isascii() and "microsoft smtp" not in value.lower():
            continue
        match = _SMTPSVC.search(value)
        if match:
            build = match.group(1)
            product = ("Windows 2000 IIS 5 SMTP (Exchange 2000)" if build.startswith("5.")
                       else "Windows Server 2003 IIS 6 SMTP (Exchange 2003)" if build.startswith("6.")
                       else "IIS SMTP")
            return {"family": "smtpsvc", "product": product, "build": build, "evidence": "header:Received"}
        match = _SMTP_SERVER.search(value)
        if match:
            build = match.group(1)
            product = next((p for prefix, p in EXCHANGE_BUILDS if build.startswith(prefix)), "Exchange 2007+")
            return {"family": "exchange", "product": product, "build": build, "evidence": "header:Received"}
    if saw_arrival_time:
        return {"family": "smtpsvc", "product": "Exchange 2000/2003 or IIS SMTP", "build": None,
                "evidence": "header:X-OriginalArrivalTime"}
    if saw_org_header:
        return {"family": "exchange", "product": "Exchange 2007+", "build": None,
                "evidence": "header:X-MS-Exchange-Organization-*"}
    return None


def decode_windows_text(data: bytes) -> str:
    """Text from a Windows tool: UTF-16 (BOM or NUL pattern), UTF-8, else Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    sample = data[:512]
    if len(sample) >= 4 and sample[1::2].count(0) * 2 >= len(sample) // 2 and sample[0::2].count(0) < len(sample) // 8:
        return data[: len(data) // 2 * 2].decode("utf-16-le", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def parse_bdr(text: str) -> dict[str, Any]:
    """The reason a BadMail `.BDR` gives: one-line text, HRESULT code, SMTP status.

    Example: "Unable to deliver this message because the following error was
    encountered: ... Specific error code was 0xC00402C7".
    """
    lines = [line.strip() for line in text.replace("\x00", "").splitlines() if line.strip()]
    reason = " ".join(" ".join(lines).split())[:1000]
    hresult = _HRESULT.search(reason)
    smtp = re.search(r"\b([245]\d\d)[ -]", reason)
    return {
        "reason": reason or None,
        "error_code": hresult.group(0).upper().replace("0X", "0x") if hresult else None,
        "status": status_code(reason),
        "smtp_reply": smtp.group(1) if smtp else None,
    }


def scan_bdp_addresses(data: bytes, limit: int = MAX_BDP_ADDRESSES) -> list[str]:
    """SMTP addresses found in an opaque binary blob (ASCII and UTF-16LE), in order, unique.

    Heuristic: the .BDP format is undocumented, so these are strings, not fields.
    """
    seen: dict[str, None] = {}
    hits: list[tuple[int, str]] = []
    for match in _ASCII_ADDRESS.finditer(data):
        hits.append((match.start(), match.group(0).decode("ascii")))
    ascii_spans = [(start, text) for start, text in hits]
    for match in _UTF16_ADDRESS.finditer(data):
        start, raw = match.start(), match.group(0)
        # An ASCII string's last letter followed by its NUL terminator looks like one
        # UTF-16 character: drop it when an ASCII address ends right there.
        if any(a_start < start + 1 <= a_start + len(text) for a_start, text in ascii_spans):
            start, raw = start + 2, raw[2:]
        hits.append((start, raw.decode("utf-16-le", "replace")))
    for _, address in sorted(hits):
        address = address.strip(".").lower()
        if "@" in address and address not in seen:
            seen[address] = None
            if len(seen) >= limit:
                break
    return list(seen)


def split_text_envelope(data: bytes) -> tuple[str | None, list[str], int]:
    """Leading `x-sender:`/`x-receiver:` lines of a Pickup/Drop file.

    Returns (sender or None, receivers, offset where the message starts). Sender `<>`
    gives "". Stops at the first other line.
    """
    sender: str | None = None
    receivers: list[str] = []
    offset = 0
    for _ in range(MAX_ENVELOPE_LINES):
        end = data.find(b"\n", offset)
        line = data[offset:] if end < 0 else data[offset:end + 1]
        match = _ENVELOPE_LINE.match(line.rstrip(b"\n"))
        if not match:
            break
        value = match.group(2).decode("utf-8", "backslashreplace").strip()
        address = bare_address(value.split()[0] if value and not value.startswith("<") else value) or ""
        if match.group(1).lower() == b"x-sender":
            if sender is None:
                sender = address
        elif address:
            receivers.append(address)
        if end < 0:
            offset = len(data)
            break
        offset = end + 1
    return sender, receivers, offset


def received_client(headers: list[tuple[str, str]]) -> dict[str, str | None] | None:
    """HELO, client name and IP from the top `Received:` line, if this server wrote it.

    Only the topmost Received is used, and only when it is a Microsoft SMTP hop: it is
    the line the server itself stamped when the client handed the message over.
    """
    for name, value in headers:
        if name.lower() != "received":
            continue
        if not (_SMTPSVC.search(value) or _SMTP_SERVER.search(value)):
            return None
        match = _RECEIVED_FROM.match(value.strip())
        if not match:
            return None
        inside = match.group(2)
        ip = _IP_IN_BRACKETS.search(inside)
        name_part = inside.split("[", 1)[0].strip() or None
        return {"helo": match.group(1), "client_name": name_part,
                "client_ip": ip.group(1) if ip else None, "by": match.group(3)}
    return None


# ---------------------------------------------------------------- reader

def _queue_dirs(root: Path) -> dict[str, Path]:
    return child_dirs(root, *QUEUE_DIRS)


def detect(root: Path) -> int:
    """A virtual server folder: Queue/PickUp/BadMail/Drop below it with SMTPSVC signatures."""
    dirs = _queue_dirs(Path(root))
    if not dirs:
        return 0
    sampled = 0
    for key, directory in dirs.items():
        names = [name for name, _ in dir_listing(directory)[:200]]
        if key == "badmail" and any(n.lower().endswith((".bdr", ".bdp")) for n in names):
            return 30
        for name in names[:_DETECT_SAMPLE]:
            if sampled >= 3 * _DETECT_SAMPLE:
                break
            sampled += 1
            try:
                head = file_head(directory, name, 8192)
            except OSError:
                continue
            if _ENVELOPE_LINE.match(head.split(b"\n", 1)[0]) or b"SMTPSVC(" in head \
                    or b"X-OriginalArrivalTime:" in head:
                return 30
    core = {"queue", "pickup", "badmail"} & set(dirs)
    return 8 if len(core) >= 2 else 0


def iter_units(root: Path) -> Iterator[QueueUnit]:
    for key, directory in sorted(_queue_dirs(Path(root)).items()):
        queue = QUEUE_DIRS[key]
        sub = directory.name
        try:
            entries = sorted(
                (e.name for e in _scandir_files(directory)), key=str.lower
            )
        except OSError:
            continue
        if queue == "badmail":
            groups: dict[str, list[str]] = {}
            for name in entries:
                stem, dot, suffix = name.rpartition(".")
                if dot and "." + suffix.lower() in BADMAIL_SUFFIXES:
                    groups.setdefault(stem, []).append(name)
            for stem in sorted(groups, key=str.lower):
                order = {s: i for i, s in enumerate(BADMAIL_SUFFIXES)}
                names = sorted(groups[stem], key=lambda n: order["." + n.rpartition(".")[2].lower()])
                yield QueueUnit(id=stem, queue=queue, paths=tuple(f"{sub}/{n}" for n in names))
            continue
        for name in entries:
            low = name.lower()
            if low in NOT_MESSAGES:
                continue
            if queue == "queue" and not low.endswith(".eml"):
                continue
            yield QueueUnit(id=name.rpartition(".")[0] or name, queue=queue, paths=(f"{sub}/{name}",))


def _scandir_files(directory: Path) -> list[os.DirEntry]:
    with os.scandir(directory) as it:
        return [e for e in it if not e.is_dir(follow_symlinks=False)]


def _fill_from_message(record: QueuedMessage, data: bytes, truncated_read: bool) -> None:
    """Headers, server version, DSN and client of the message in `data`; `truncated_read`:
    the file goes on past `data` (a header block with no blank line in it was cut)."""
    body_start = find_body_start(data)
    block = data if body_start < 0 else data[:body_start]
    if body_start < 0 and truncated_read:
        record.add_error(f"header block longer than {HEAD_READ_LIMIT} bytes; cut there")
    headers = parse_header_block(block)
    apply_headers(record, headers)
    if not headers:
        record.add_error("no RFC 5322 header fields found")
        return
    version = sniff_version(headers)
    if version:
        record.details["server_version"] = version
    original = record.header("X-OriginalArrivalTime")
    if original is not None:
        decoded = parse_original_arrival_time(original)
        record.details["original_arrival_time"] = decoded
        if decoded is None:
            record.details["original_arrival_time_raw"] = original[:200]
    content_type = (record.header("Content-Type") or "").lower()
    if "multipart/report" in content_type and record.queue != "badmail":  # BadMail parses its own
        report = parse_dsn(data)
        if report is not None:
            record.details["dsn"] = report.summary()
    client = received_client(headers)
    if client:
        record.helo = client["helo"]
        record.client_name = client["client_name"]
        record.client_ip = client["client_ip"]
        record.details["client_evidence"] = f"header:Received (top hop, by {client['by']})"


def read_unit(root: Path, unit: QueueUnit, full: bool = False) -> QueuedMessage:
    return read_into_record(MTA, root, unit, full, _read_into)


def _read_into(root: Path, unit: QueueUnit, record: QueuedMessage, full: bool) -> None:
    if unit.queue == "badmail":
        _read_badmail(root, unit, record, full)
        return
    rel = unit.paths[0]
    if full:
        data, st = fsutil.read_file_and_stat(root, rel)
    else:  # the body only for a DSN (multipart/report), up to HEAD_READ_LIMIT
        data, _, st = read_message_head(root, rel, HEAD_READ_LIMIT, may_be_report)
    truncated = not full and st.st_size > len(data)
    record.size = st.st_size
    record.arrival = fsutil.iso_utc(st.st_mtime)
    if unit.queue in ("pickup", "drop"):
        sender, receivers, offset = split_text_envelope(data)
        if sender is None and not receivers:
            record.details["envelope"] = "no x-sender/x-receiver lines; SMTP takes the envelope from the headers"
        else:
            record.sender = sender
            record.recipients = receivers
            record.details["envelope"] = "x-sender/x-receiver lines"
            if sender is None:
                record.add_error("x-receiver lines without an x-sender line")
            data = data[offset:]
    else:
        record.details["envelope"] = ENVELOPE_NOTE
    _fill_from_message(record, data, truncated)


def _member(unit: QueueUnit, suffix: str) -> str | None:
    return next((p for p in unit.paths if p.lower().endswith(suffix)), None)


def _read_badmail(root: Path, unit: QueueUnit, record: QueuedMessage, full: bool) -> None:
    bad, bdr, bdp = (_member(unit, s) for s in BADMAIL_SUFFIXES)
    record.details["badmail_files"] = {"bad": bad, "bdr": bdr, "bdp": bdp}
    if bdr:
        try:
            reason = parse_bdr(decode_windows_text(fsutil.read_file(root, bdr, BDR_READ_LIMIT)))
            record.details["bdr"] = reason
            record.status = reason["reason"]
        except OSError as exc:
            record.add_error(f"{bdr}: {exc.strerror or exc}")
    if bdp:
        try:
            blob = fsutil.read_file(root, bdp, BDP_READ_LIMIT)
            record.details["bdp_addresses"] = {
                "addresses": scan_bdp_addresses(blob), "heuristic": True,
                "note": ".BDP is undocumented binary; addresses found by string scan (ASCII, UTF-16LE)",
            }
        except OSError as exc:
            record.add_error(f"{bdp}: {exc.strerror or exc}")
    if not bad:
        record.add_error("BadMail unit without its .BAD message file")
        return
    data, st = fsutil.read_file_and_stat(root, bad, None if full else BADMAIL_READ_LIMIT)
    record.size = st.st_size
    record.arrival = fsutil.iso_utc(st.st_mtime)
    record.details["envelope"] = "BadMail keeps no readable envelope; see .BDP addresses (heuristic)"
    _fill_from_message(record, data, False)
    report = parse_dsn(data)
    if report is not None:
        record.details["dsn"] = report.summary()
        codes = report.statuses()
        if codes and not record.status:
            record.status = "; ".join(
                f"{r.final_recipient}: {r.status} {r.diagnostic_code or ''}".strip() for r in report.recipients
            )[:1000]
        if codes:
            record.details["dsn_status"] = codes[0]


def read_message_bytes(root: Path, unit: QueueUnit) -> bytes:
    """The stored message: Queue file as is, Pickup/Drop without the envelope lines,
    BadMail's .BAD (the NDR with the original inside, or the message itself)."""
    if unit.queue == "badmail":
        bad = _member(unit, ".bad")
        if bad is None:
            raise FileNotFoundError(f"{unit.id}: BadMail unit has no .BAD file")
        return fsutil.read_file(root, bad)
    data = fsutil.read_file(root, unit.paths[0])
    if unit.queue in ("pickup", "drop"):
        _, _, offset = split_text_envelope(data)
        data = data[offset:]
    return data

"""Windows event logs: Event Viewer exports (CSV, text, XML) and .evtx/.evt files.

Every event becomes a generic `LogEvent` (time, id, source, level, category,
computer, description, insertion strings) so other verbs can use any event id
(diagnose: 1701/1707/1709/1710/4000/4001/7002/7004/1035/1012/1024 ...). Attribution
on Exchange 2000/2003 needs Event 1708 (MSExchangeTransport, SMTP Protocol, logged
with diagnostics logging at Maximum; research/exchange-formats.md §1a):

  SMTP authentication was completed successfully with client <client>.
  The authentication method was Login and the username was <DOMAIN\\user>.

`auth_1708(event)` extracts (client, method, user) from it.

Shapes read:
- CSV: Vista+ "Save as CSV" (`Level,Date and Time,Source,Event ID,Task Category`
  header, description in the sixth column) and header-less Windows 2000/2003 CSV/TSV
  (columns told apart by their values).
- Text: the 2000/2003 "Event Type:/Event Source:/.../Description:" blocks (clipboard
  copy, eventquery), `wevtutil qe /f:text` (`Event[0]:` blocks), and
  `Get-WinEvent | Format-List` (`TimeCreated : ...`).
- XML: `wevtutil qe /f:xml`, `Get-WinEvent ... ToXml()`, the rendered XML of .evtx.
- .evtx with the `python-evtx` library, legacy .evt with `dissect.eventlog`, both
  optional (`pip install queuetool[evtx]`); without them the file is reported.
Export times are the exporting machine's local time with no zone; they are taken as
UTC, and trace estimates the offset against the W3C log (see docs/trace.md).
"""
from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from . import LogEvent, LogStats, iso_from_parts, iter_lines, parse_iso

FORMAT = "windows-events"
EVTX_MAGIC = b"ElfFile\x00"
EVT_MAGIC = b"LfLe"
LEVELS = {"information", "warning", "error", "success", "audit success", "audit failure",
          "critical", "verbose", "failure audit", "success audit", "informational"}
MAX_EVENT_TEXT = 64 * 1024

_1708 = re.compile(
    r"authentication was completed successfully with client\s+\"?([^\s\".]+(?:\.[^\s\".]+)*)\"?\.?"
    r".*?method was\s+(\S+?)\.?\s+and the user ?name was\s+\"?([^\s\"]+?)\"?\.?(?:\s|$)",
    re.IGNORECASE | re.DOTALL,
)
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_DOT_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?$")
_KEYLINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]{0,30}?)\s*:\s*(.*)$")


def detect(first_bytes: bytes) -> int:
    if first_bytes.startswith(EVTX_MAGIC) or first_bytes[4:8] == EVT_MAGIC:
        return 50
    text = first_bytes.decode("utf-8", "replace")
    head = text[:4096]
    if "Event ID" in head and ("Date and Time" in head or "Event Source" in head or "Event[" in head):
        return 40
    if "<Event " in head and "<EventID" in text:
        return 40
    if re.search(r"^\s*(ProviderName|TimeCreated)\s*:", head, re.M) and re.search(r"^\s*Id\s*:", head, re.M):
        return 35
    rows = [r for r in head.splitlines()[:20] if r.strip()]
    if rows and sum(1 for r in rows if _classify_row(_split_row(r)) is not None) * 2 >= len(rows):
        return 30
    return 0


def auth_1708(event: LogEvent) -> tuple[str, str, str] | None:
    """(client, method, user) of an Event 1708 'SMTP authentication ... completed', else None."""
    if event.event_id != 1708:
        return None
    match = _1708.search(event.message or "")
    if match:
        return match.group(1).rstrip("."), match.group(2), match.group(3).rstrip(".")
    if len(event.strings) >= 3:  # .evt/.evtx insertion strings: client, method, user
        return event.strings[0], event.strings[1], event.strings[2]
    return None


# Windows Security "logon failure" events (2000/2003: 529-537, 539; 2008+: 4625) and
# Exchange 2007+ SmtpReceive 1035 (LogonDenied; names the client, not the user).
FAILED_LOGON_IDS = {529, 530, 531, 532, 533, 534, 535, 536, 537, 539, 4625, 1035}
_USER_FIELD = re.compile(r"(?:User Name|Account Name):\s*([^\s:]+)", re.IGNORECASE)
_SOURCE_ADDRESS = re.compile(r"(?:Source Network Address|source IP address[^\[]*)[:\s]*\[?([0-9A-Fa-f:.]{3,})\]?",
                             re.IGNORECASE)


def failed_logon(event: LogEvent) -> tuple[str, str | None] | None:
    """(user or "", client address) of a failed-logon event, else None."""
    if event.event_id not in FAILED_LOGON_IDS:
        return None
    if event.event_id == 1035 and "authentication failed" not in (event.message or "").lower():
        return None
    users = [u for u in _USER_FIELD.findall(event.message or "") if u not in ("-", "N/A")]
    address = _SOURCE_ADDRESS.search(event.message or "")
    ip = address.group(1).rstrip(".") if address else None
    return (users[-1] if users else ""), (ip if ip not in ("-", "") else None)


def account_name(user: str) -> str:
    """`DOMAIN\\user` / `user@domain` -> `user` (lower case): the account the queue knows."""
    user = user.strip().strip('"')
    if "\\" in user:
        user = user.rsplit("\\", 1)[1]
    return user.lower()


# ---------------------------------------------------------------- dates


def parse_event_time(date: str, clock: str = "") -> str | None:
    """ISO UTC of an export's date and time (US M/D/Y, D.M.Y or ISO; 12/24 h)."""
    date, clock = date.strip(), clock.strip()
    if not clock and " " in date and not _ISO_DATE.match(date):
        date, _, clock = date.partition(" ")
    iso = parse_iso(date if "T" in date else f"{date}T{clock}") if date[:4].isdigit() else None
    if iso:
        return iso
    for pattern, order in ((_US_DATE, (3, 1, 2)), (_DOT_DATE, (3, 2, 1)), (_ISO_DATE, (1, 2, 3))):
        match = pattern.match(date)
        if match:
            year, month, day = (int(match.group(i)) for i in order)
            break
    else:
        return None
    match = _TIME.match(clock) if clock else None
    if clock and not match:
        return None
    hour = minute = second = 0
    if match:
        hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
        meridian = (match.group(4) or "").lower()
        if meridian == "pm" and hour < 12:
            hour += 12
        elif meridian == "am" and hour == 12:
            hour = 0
    return iso_from_parts(year, month, day, hour, minute, second)


# ---------------------------------------------------------------- CSV


def _split_row(line: str) -> list[str]:
    delimiter = "\t" if line.count("\t") >= 4 else ","
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return []


def _classify_row(cells: list[str]) -> dict | None:
    """Map a header-less export row by its values: date, time, level, id, description."""
    if len(cells) < 5:
        return None
    out: dict = {"rest": []}
    for cell in cells:
        value = cell.strip()
        if "date" not in out and (_US_DATE.match(value) or _DOT_DATE.match(value) or _ISO_DATE.match(value)):
            out["date"] = value
        elif "date" not in out and parse_event_time(value) and " " in value:
            out["date"] = value
        elif "time" not in out and "date" in out and _TIME.match(value):
            out["time"] = value
        elif "level" not in out and value.lower() in LEVELS:
            out["level"] = value
        elif "id" not in out and value.isdigit() and len(value) <= 5:
            out["id"] = int(value)
        else:
            out["rest"].append(value)
    if "date" not in out or "id" not in out:
        return None
    return out


def _event_from_row(cells: list[str], header: list[str] | None, path: str, lineno: int) -> LogEvent | None:
    if header:
        row = {name.strip().lower(): value for name, value in zip(header, cells)}
        extra = cells[len(header):]
        event_id = row.get("event id") or row.get("eventid") or row.get("event") or row.get("id") or ""
        try:
            number = int(event_id.strip())
        except ValueError:
            return None
        when = parse_event_time(row.get("date and time") or row.get("date") or row.get("timecreated") or "",
                                row.get("time", ""))
        message = row.get("description") or row.get("message") or " ".join(extra)
        return LogEvent(FORMAT, path, when, number, row.get("source") or row.get("providername"),
                        row.get("level") or row.get("type"), row.get("task category") or row.get("category"),
                        row.get("computer"), message[:MAX_EVENT_TEXT], line=lineno)
    mapped = _classify_row(cells)
    if mapped is None:
        return None
    rest = mapped["rest"]
    # header-less 2000/2003 order: source, [category], user, computer, description (last)
    message = rest[-1] if rest else ""
    names = rest[:-1]
    return LogEvent(FORMAT, path, parse_event_time(mapped["date"], mapped.get("time", "")), mapped["id"],
                    names[0] if names else None, mapped.get("level"), names[1] if len(names) > 3 else None,
                    names[-1] if len(names) >= 3 else None, message[:MAX_EVENT_TEXT], line=lineno)


# ---------------------------------------------------------------- text blocks

_TEXT_KEYS = {
    "event type": "level", "level": "level", "type": "level", "leveldisplayname": "level",
    "event source": "provider", "source": "provider", "providername": "provider",
    "event category": "category", "category": "category", "task": "category", "taskdisplayname": "category",
    "event id": "id", "id": "id", "eventid": "id",
    "date": "date", "time": "time", "timecreated": "date",
    "computer": "computer", "machinename": "computer",
    "description": "message", "message": "message",
}


# A key seen twice means the next event has begun (export blocks have no separator).
_STARTS_EVENT = ("level", "provider", "id", "date")


def _event_from_block(block: dict, path: str, lineno: int) -> LogEvent | None:
    try:
        number = int(str(block.get("id", "")).strip())
    except ValueError:
        return None
    when = parse_event_time(block.get("date", ""), block.get("time", ""))
    message = " ".join(block.get("message", "").split())
    return LogEvent(FORMAT, path, when, number, block.get("provider") or None, block.get("level") or None,
                    block.get("category") or None, block.get("computer") or None,
                    message[:MAX_EVENT_TEXT], line=lineno)


# ---------------------------------------------------------------- XML


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def event_from_xml(element: ET.Element, path: str, lineno: int | None = None) -> LogEvent | None:
    """A LogEvent from one `<Event>` element (wevtutil / .evtx rendering)."""
    event = LogEvent(FORMAT, path, line=lineno)
    for node in element.iter():
        name = _local(node.tag)
        if name == "Provider":
            event.provider = node.get("Name") or node.get("EventSourceName")
        elif name == "EventID" and (node.text or "").strip().isdigit():
            event.event_id = int(node.text.strip())
        elif name == "TimeCreated":
            event.time = parse_iso(node.get("SystemTime", ""))
        elif name == "Computer":
            event.computer = (node.text or "").strip() or None
        elif name == "Data" or name == "string":
            event.strings.append((node.text or "").strip())
        elif name == "Message":
            event.message = " ".join((node.text or "").split())[:MAX_EVENT_TEXT]
        elif name == "Level" and node.text and not node.text.strip().isdigit():
            event.level = node.text.strip()
        elif name == "Task" and node.text and not node.text.strip().isdigit():
            event.category = node.text.strip()
    if event.event_id is None:
        return None
    if not event.message and event.strings:
        event.message = " ".join(event.strings)[:MAX_EVENT_TEXT]
    return event


_EVENT_START = re.compile(r"<Event[\s>]")


def _read_xml_text(path: Path, stats: LogStats) -> Iterator[LogEvent]:
    """`<Event>` elements anywhere in the text (one per line or many on one line)."""
    buffer = ""
    start_line = 0
    for lineno, line in iter_lines(path, stats):
        buffer = f"{buffer}\n{line}" if buffer else line
        while True:
            begin = _EVENT_START.search(buffer)
            if begin is None:
                buffer = buffer[-16:]
                break
            if begin.start():
                buffer = buffer[begin.start():]
                start_line = lineno
            elif not start_line:
                start_line = lineno
            end = buffer.find("</Event>")
            if end < 0:
                if len(buffer) > 4 * MAX_EVENT_TEXT:
                    stats.add_junk(start_line, buffer, "event too long")
                    buffer, start_line = "", 0
                break
            text, buffer = buffer[: end + len("</Event>")], buffer[end + len("</Event>"):]
            begun, start_line = start_line, lineno
            try:
                element = ET.fromstring(text)
            except ET.ParseError:
                stats.add_junk(begun, text, "bad XML")
                continue
            event = event_from_xml(element, str(path), begun)
            if event is None:
                stats.add_junk(begun, text, "no EventID")
            else:
                yield event
    if _EVENT_START.search(buffer):
        stats.add_junk(start_line, buffer, "truncated event")


# ---------------------------------------------------------------- binary


def _read_evtx(path: Path, stats: LogStats) -> Iterator[LogEvent]:
    try:
        import Evtx.Evtx as evtx  # python-evtx
    except ImportError:
        stats.error = "reading .evtx needs python-evtx: pip install 'queuetool[evtx]' (or export as CSV/XML)"
        return
    try:
        with evtx.Evtx(str(path)) as log:
            for index, record in enumerate(log.records(), 1):
                stats.lines = index
                try:
                    event = event_from_xml(ET.fromstring(record.xml()), str(path), index)
                except Exception as exc:  # noqa: BLE001 - a damaged record is junk, not fatal
                    stats.add_junk(index, f"record {index}", f"{type(exc).__name__}")
                    continue
                if event is not None:
                    yield event
    except Exception as exc:  # noqa: BLE001 - a damaged file ends the read, reported
        stats.error = f"evtx read stopped: {type(exc).__name__}: {exc}"


def _read_evt(path: Path, stats: LogStats) -> Iterator[LogEvent]:
    try:
        from dissect.eventlog.evt import Evt  # dissect.eventlog
    except ImportError:
        stats.error = "reading legacy .evt needs dissect.eventlog: pip install 'queuetool[evtx]' (or export as CSV)"
        return
    try:
        with open(path, "rb") as handle:
            for index, record in enumerate(Evt(handle), 1):
                stats.lines = index
                try:
                    strings = [str(s) for s in (record.Strings or [])]
                    when = record.TimeGenerated
                    yield LogEvent(FORMAT, str(path), parse_iso(when.isoformat()) if when else None,
                                   int(record.EventCode), str(record.SourceName or "") or None,
                                   EVT_TYPES.get(int(record.EventType)), None,
                                   str(record.Computername or "") or None,
                                   " ".join(strings)[:MAX_EVENT_TEXT], strings, index)
                except Exception as exc:  # noqa: BLE001 - a damaged record is junk, not fatal
                    stats.add_junk(index, f"record {index}", type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - a damaged file ends the read, reported
        stats.error = f"evt read stopped: {type(exc).__name__}: {exc}"


EVT_TYPES = {1: "Error", 2: "Warning", 4: "Information", 8: "Audit Success", 16: "Audit Failure"}


# ---------------------------------------------------------------- reader


def read_log(path: str | Path, stats: LogStats | None = None) -> Iterator[LogEvent]:
    """Every event in an export or event log file, in file order."""
    path = Path(path)
    stats = stats if stats is not None else LogStats(str(path), FORMAT)
    from . import sniff

    head = sniff(path, 8192)
    if head.startswith(EVTX_MAGIC):
        yield from _read_evtx(path, stats)
        return
    if head[4:8] == EVT_MAGIC:
        yield from _read_evt(path, stats)
        return
    text = head.decode("utf-8", "replace")
    if "<Event " in text or "<Event>" in text:
        yield from _read_xml_text(path, stats)
        return
    yield from _read_text_or_csv(path, stats)


def _read_text_or_csv(path: Path, stats: LogStats) -> Iterator[LogEvent]:
    header: list[str] | None = None
    block: dict[str, str] = {}
    block_line = 0
    in_description = False

    def flush() -> Iterator[LogEvent]:
        nonlocal block, in_description
        if block:
            event = _event_from_block(block, str(path), block_line)
            if event is None:
                stats.add_junk(block_line, str(block)[:160], "event block without an id")
            else:
                yield event
        block, in_description = {}, False

    pending = ""  # a CSV record whose quoted description spans lines
    pending_line = 0
    for lineno, line in iter_lines(path, stats):
        if pending:
            pending += "\n" + line
            if pending.count('"') % 2 == 1 and len(pending) < MAX_EVENT_TEXT:
                continue
            line, lineno, pending = pending, pending_line, ""
        stripped = line.strip()
        if header is None and not block and stripped.lower().startswith("level,") and "event id" in stripped.lower():
            header = _split_row(stripped)
            continue
        if not block and (stripped.count(",") >= 4 or stripped.count("\t") >= 4) and not re.match(
                r"^[A-Za-z ]+:\s", stripped):
            if line.count('"') % 2 == 1:
                pending, pending_line = line, lineno
                continue
            event = _event_from_row(_split_row(line), header, str(path), lineno)
            if event is None:
                stats.add_junk(lineno, line, "not an event row")
            else:
                yield event
            continue
        if re.match(r"^Event\[\d+\]:?\s*$", stripped):
            yield from flush()
            block_line = lineno
            continue
        match = _KEYLINE.match(line)
        key = _TEXT_KEYS.get(match.group(1).strip().lower()) if match else None
        if key and not (in_description and key not in _STARTS_EVENT):
            if key in _STARTS_EVENT and key in block:
                yield from flush()  # the next event's first key line
            if not block:
                block_line = lineno
            value = match.group(2).strip()
            if key == "message":
                in_description = True
                block["message"] = value
            else:
                in_description = False
                block.setdefault(key, value)
            continue
        if in_description:
            if len(block.get("message", "")) < MAX_EVENT_TEXT:
                block["message"] = (block.get("message", "") + " " + stripped).strip()
            continue
        if stripped and not block:
            stats.add_junk(lineno, line, "not an event")
    yield from flush()
    if pending:
        stats.add_junk(pending_line, pending, "truncated quoted row")


read_windows_events_log = read_log

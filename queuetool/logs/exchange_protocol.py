"""Exchange 2007+ SMTP Receive protocol log (CSV): sessions by session-id.

  #Log-type: SMTP Receive Protocol Log
  #Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context
  ...,08D...,5,10.0.0.1:25,203.0.113.7:50123,<,EHLO odd-helo,
  ...,08D...,9,...,*,EXAMPLE\\scanner,authenticated
  ...,08D...,9,...,*,,Inbound AUTH LOGIN failed because of LogonDenied
  ...,08D...,10,...,*,,User Name: admin
  ...,08D...,12,...,<,MAIL FROM:<a@b> SIZE=123,
  ...,08D...,20,...,>,"250 2.6.0 <msgid> [InternalId=...] Queued mail for delivery",
Event codes: `+` connect, `-` disconnect, `>` sent, `<` received, `*` information
(research/exchange-formats.md §4d). Columns come from each `#Fields:` line.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator

from . import LogMessage, LogStats, Session, as_source, iter_lines, parse_iso

FORMAT = "exchange-protocol"
DEFAULT_FIELDS = ["date-time", "connector-id", "session-id", "sequence-number", "local-endpoint",
                  "remote-endpoint", "event", "data", "context"]
_ADDRESS = re.compile(r"<([^<>]*)>")
_QUEUED = re.compile(r"^250 2\.6\.0 (<[^>]*>)")


def detect(first_bytes: bytes) -> int:
    text = first_bytes[:8192].decode("utf-8", "replace")
    if "SMTP Receive Protocol Log" in text:
        return 50
    if "#Fields:" in text and "session-id" in text and "sequence-number" in text and "remote-endpoint" in text:
        return 40
    return 0


def iter_csv_rows(path: Path, stats: LogStats, default_fields: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row by #Fields name) of an Exchange CSV log; quoted fields may span lines."""
    fields = list(default_fields)
    pending, pending_line = "", 0
    for lineno, line in iter_lines(path, stats):
        if pending:
            line, lineno = pending + "\n" + line, pending_line
            pending = ""
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith("#Fields:"):
                fields = [f.strip() for f in line[len("#Fields:"):].strip().split(",")]
            continue
        if line.count('"') % 2 == 1 and len(line) < 64 * 1024:
            pending, pending_line = line, lineno
            continue
        try:
            cells = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            stats.add_junk(lineno, line, "bad CSV")
            continue
        if len(cells) < len(fields) - 2 or len(cells) > len(fields) + 2:
            stats.add_junk(lineno, line, f"{len(cells)} cells, #Fields has {len(fields)}")
            continue
        yield lineno, dict(zip(fields, cells))
    if pending:
        stats.add_junk(pending_line, pending, "truncated quoted row")


def endpoint_ip(value: str) -> str | None:
    """`203.0.113.7:50123` / `[2001:db8::1]:25` / `2001:db8::1:25` -> the address."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("["):
        return value[1:value.index("]")] if "]" in value else None
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    if value.count(":") > 1:
        return value.rsplit(":", 1)[0]
    return value


def read_log(path: str | Path, stats: LogStats | None = None) -> Iterator[Session]:
    """One Session per session-id, in order of first appearance."""
    path = as_source(path)
    stats = stats if stats is not None else LogStats(str(path), FORMAT)
    sessions: dict[str, Session] = {}
    current: dict[str, LogMessage] = {}
    for lineno, row in iter_csv_rows(path, stats, DEFAULT_FIELDS):
        session_id = row.get("session-id", "").strip()
        when = parse_iso(row.get("date-time", ""))
        if not session_id or when is None:
            stats.add_junk(lineno, ",".join(row.values()), "no session-id or time")
            continue
        session = sessions.get(session_id)
        if session is None:
            session = sessions[session_id] = Session(FORMAT, str(path), session_id=session_id, start=when)
            session.client_ip = endpoint_ip(row.get("remote-endpoint", ""))
            session.details["connector"] = row.get("connector-id")
        session.end = when
        event, data, context = row.get("event", ""), row.get("data", ""), row.get("context", "")
        upper = data.upper()
        if event == "<":
            if upper.startswith(("EHLO ", "HELO ")):
                session.helo = data[5:].strip() or None
            elif upper.startswith("AUTH "):
                session.auth_method = data[5:].strip().split(" ")[0] or None
            elif upper.startswith("MAIL FROM:"):
                found = _ADDRESS.search(data)
                message = LogMessage(time=when, sender=found.group(1) if found else data[10:].strip())
                current[session_id] = message
            elif upper.startswith("RCPT TO:"):
                message = current.get(session_id)
                found = _ADDRESS.search(data)
                if message is not None and found and found.group(1) not in message.recipients:
                    message.recipients.append(found.group(1))
        elif event == "*":
            note = data.strip() or context.strip()  # the text sits in either column
            if context.strip().lower() == "authenticated" and data.strip():
                session.auth_user = data.strip()
            elif "failed because of" in note and "AUTH" in note.upper():
                session.failed_logins.append("")
            elif note.startswith("User Name:") and session.failed_logins and not session.failed_logins[-1]:
                session.failed_logins[-1] = note[len("User Name:"):].strip()
        elif event == ">":
            queued = _QUEUED.match(data.strip().strip('"'))
            if queued and session_id in current:  # other replies (250 2.1.0 Sender OK ...) keep it open
                message = current.pop(session_id)
                message.message_id = queued.group(1)
                session.messages.append(message)
    yield from sessions.values()


read_exchange_protocol_log = read_log

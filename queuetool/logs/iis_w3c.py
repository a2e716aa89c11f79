"""IIS SMTP (Exchange 2000/2003) W3C extended log: sessions by client, messages by DATA.

  #Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method
           cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes ...
  2006-10-09 05:00:15 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 HELO - +36A42160 250 ...
  ... MAIL - +FROM:+<a@b> 250 ...   RCPT - +TO:+<c@d> 250 ...   DATA - +<msgid@host> 250 ...
What is known (research/exchange-formats.md §3): times are UTC; `cs-username` is the
HELO/EHLO argument, never the login; the AUTH line never names the user (Event 1708
does); the DATA line's query is the Message-ID; arguments use `+` for spaces.
Every `#Fields:` line (a restart writes a new header block) redefines the columns.
IIS logs no connection id, so a session is a client's lines from HELO/EHLO to QUIT.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from . import LogMessage, LogStats, Session, as_source, iter_lines, parse_iso, strip_angles

FORMAT = "iis-w3c"
DEFAULT_FIELDS = (
    "date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
    "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
    "cs(User-Agent) cs(Cookie) cs(Referer)"
).split()
OUTBOUND_USERS = {"outboundconnectioncommand", "outboundconnectionresponse"}
_ADDRESS = re.compile(r"<([^<>]*)>")


def detect(first_bytes: bytes) -> int:
    text = first_bytes.decode("utf-8", "replace")
    if "#Fields:" in text and "c-ip" in text and "cs-method" in text:
        if "SMTPSVC" in text or re.search(r"\s(EHLO|HELO|MAIL|RCPT|DATA|QUIT)\s", text):
            return 40
        return 10
    return 0


def _argument(query: str) -> str:
    return "" if query == "-" else query.replace("+", " ").strip()


def _address(query: str) -> str | None:
    match = _ADDRESS.search(query)
    if match:
        return match.group(1).strip()
    _, _, tail = _argument(query).partition(":")
    return tail.strip() or None


def read_log(path: str | Path, stats: LogStats | None = None) -> Iterator[Session]:
    """Inbound SMTP sessions with HELO, AUTH outcome, MAIL/RCPT/DATA per message."""
    path = as_source(path)
    stats = stats if stats is not None else LogStats(str(path), FORMAT)
    fields = list(DEFAULT_FIELDS)
    open_sessions: dict[str, Session] = {}
    current_message: dict[str, LogMessage] = {}

    def close(ip: str) -> Session | None:
        current_message.pop(ip, None)
        return open_sessions.pop(ip, None)

    for lineno, line in iter_lines(path, stats):
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith("#Fields:"):
                fields = line[len("#Fields:"):].split()
            continue
        values = line.split()
        if len(values) != len(fields):
            stats.add_junk(lineno, line, f"{len(values)} fields, #Fields has {len(fields)}")
            continue
        row = dict(zip(fields, values))
        method = row.get("cs-method", "").upper()
        ip = row.get("c-ip", "-")
        user = row.get("cs-username", "-")
        if user.lower() in OUTBOUND_USERS or ip == "-":
            continue
        if "date" in row and "time" in row:
            when = parse_iso(f"{row['date']}T{row['time']}Z")
        else:
            when = parse_iso(row.get("time", "")) if "time" in row else None
        if when is None:
            stats.add_junk(lineno, line, "bad date/time")
            continue
        status = row.get("sc-status", "-")
        query = row.get("cs-uri-query", "-")
        session = open_sessions.get(ip)
        if session is None or method in ("HELO", "EHLO") and (session.messages or session.helo):
            if session is not None:
                yield session
                close(ip)
            session = Session(FORMAT, str(path), session_id=f"{ip}@{when}", start=when, client_ip=ip)
            session.details["server"] = row.get("s-computername")
            session.details["auth_status"] = []
            open_sessions[ip] = session
        session.end = when
        if method in ("HELO", "EHLO"):
            session.helo = _argument(query) or (user if user != "-" else None)
        elif method == "AUTH":
            session.details["auth_status"].append(status)
            session.details.setdefault("auth_time", when)
            session.auth_method = session.auth_method or (_argument(query).split() or [None])[0]
            if status.startswith("535") or status.startswith("5") and status != "-":
                session.failed_logins.append("")
        elif method == "MAIL":
            message = LogMessage(time=when, sender=_address(query) or "")
            current_message[ip] = message
            if status.startswith("2"):
                session.messages.append(message)
        elif method == "RCPT":
            message = current_message.get(ip)
            rcpt = _address(query)
            if message is not None and rcpt and status.startswith("2") and rcpt not in message.recipients:
                message.recipients.append(rcpt)
        elif method == "DATA":
            message = current_message.pop(ip, None)
            if message is not None:
                message.message_id = strip_angles(_argument(query)) or None
                if message.message_id:
                    message.message_id = f"<{message.message_id}>"
                message.time = when
                if not status.startswith("2") and message in session.messages:
                    session.messages.remove(message)
        elif method == "QUIT":
            done = close(ip)
            if done is not None:
                yield done
        if session.helo is None and user not in ("-", "") and method not in ("AUTH",):
            session.helo = user
    yield from open_sessions.values()


read_iis_w3c_log = read_log

"""Exim mainlog: one `<=` line per accepted message carries the whole story.

  2026-11-27 05:34:49 [pid] 1qDO9M-0003B3-2p <= a@b H=name (helo) [ip]:port P=esmtpa
      A=plain_server:alice S=1234 id=<msgid> for x@y      (`for` with +received_recipients)
  2026-11-27 05:34:49 1qDO9M-0003B3-2p <= www-data@host U=www-data P=local S=512
  2026-11-27 05:34:49 plain_server authenticator failed for (helo) [ip]:port:
      535 Incorrect authentication data (set_id=admin)
  2026-11-27 05:34:49 1qDO9M-0003B3-2p == x@y R=dnslookup T=remote_smtp defer (-1): ...
Exim logs no connection id by default, so each message is its own Session, and each
failed AUTH a Session with one failed login (Exim wiki / spec ch. "Log files").
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from . import LogMessage, LogStats, Session, as_source, iter_lines, parse_iso, strip_angles

FORMAT = "exim"

_PREFIX = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?(?: [+-]\d{4})?)\s+(?:\[\d+\]\s+)?(.*)$"
)
_MSGID = re.compile(r"^([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4})\s+(\S+)\s*(.*)$")
_AUTH_FAIL = re.compile(
    r"^(\S+) authenticator failed for (.*?)(?:\[([^\]]+)\](?::\d+)?)?: (.*?)(?:\(set_id=(.*)\))?\s*$"
)
_HOST = re.compile(r"H=(?:([^\s(]\S*)\s+)?(?:\(([^)]*)\)\s+)?\[([^\]]+)\](?::\d+)?")
_FIELD = re.compile(r"(?:^|\s)([A-Za-z]{1,2})=(\S+)")
_ID_FIELD = re.compile(r"\sid=(\S+)")
_FOR = re.compile(r"\sfor\s+(.+)$")


def detect(first_bytes: bytes) -> int:
    hits = 0
    for raw in first_bytes.split(b"\n")[:400]:
        line = raw.decode("utf-8", "replace")
        match = _PREFIX.match(line)
        if not match:
            continue
        rest = match.group(2)
        if _MSGID.match(rest) or " authenticator failed for " in rest or rest.startswith(
                ("exim ", "Start queue run", "End queue run", "SMTP connection from", "no host name found")):
            hits += 1
    return 30 if hits >= 1 else 0


def _time(stamp: str) -> str | None:
    parts = stamp.split()
    if len(parts) == 3:  # with log_timezone: "+0100"
        zone = parts[2]
        return parse_iso(f"{parts[0]}T{parts[1]}{zone[:3]}:{zone[3:]}")
    return parse_iso(stamp)


def read_log(path: str | Path, stats: LogStats | None = None) -> Iterator[Session]:
    """One Session per received message and per failed AUTH, in file order."""
    path = as_source(path)
    stats = stats if stats is not None else LogStats(str(path), FORMAT)
    by_id: dict[str, LogMessage] = {}
    for lineno, line in iter_lines(path, stats):
        if not line.strip():
            continue
        match = _PREFIX.match(line)
        if not match:
            stats.add_junk(lineno, line, "no timestamp")
            continue
        when = _time(match.group(1))
        rest = match.group(2)
        fail = _AUTH_FAIL.match(rest)
        if fail:
            helo_part = fail.group(2).strip()
            helo = helo_part[1:-1] if helo_part.startswith("(") and helo_part.endswith(")") else None
            session = Session(FORMAT, str(path), start=when, end=when, client_ip=fail.group(3), helo=helo,
                              auth_method=fail.group(1))
            session.failed_logins.append((fail.group(5) or "").strip())
            session.details["reason"] = fail.group(4).strip()
            yield session
            continue
        msg = _MSGID.match(rest)
        if not msg:
            continue  # daemon chatter, rejections without an id: not junk, not needed
        exim_id, flag, tail = msg.group(1), msg.group(2), msg.group(3)
        if flag == "<=":
            sender, _, fields_text = tail.partition(" ")
            fields_text = " " + fields_text
            message = LogMessage(time=when, queue_id=exim_id, sender="" if sender == "<>" else sender)
            session = Session(FORMAT, str(path), session_id=exim_id, start=when, end=when)
            host = _HOST.search(fields_text)
            if host:
                session.client_name, session.helo, session.client_ip = host.group(1), host.group(2), host.group(3)
            for key, value in _FIELD.findall(fields_text.split(" for ", 1)[0]):
                if key == "A":
                    method, _, user = value.partition(":")
                    session.auth_method, session.auth_user = method, (user or None)
                elif key == "P":
                    session.details["protocol"] = value
                elif key == "U":
                    session.details["local_user"] = value
                elif key == "S":
                    try:
                        message.size = int(value)
                    except ValueError:
                        pass
            found = _ID_FIELD.search(fields_text)
            if found:
                message.message_id = found.group(1)
            rcpts = _FOR.search(fields_text)
            if rcpts:
                message.recipients = [strip_angles(r) or r for r in rcpts.group(1).split()]
            by_id[exim_id] = message
            session.messages.append(message)
            yield session
        elif flag in ("=>", "->", "==", "**", "*>") and exim_id in by_id:
            rcpt = tail.split(" ", 1)[0]
            rcpt = strip_angles(rcpt) or rcpt
            if rcpt and rcpt not in by_id[exim_id].recipients:
                by_id[exim_id].recipients.append(rcpt)


read_exim_log = read_log

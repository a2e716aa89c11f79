"""Sendmail syslog: the login is logged once per connection, messages by queue id.

  sm-mta[pid]: AUTH=server, relay=[ip], authid=alice, mech=LOGIN, bits=0
  sm-mta[pid]: QID: from=<a>, size=N, class=0, nrcpts=1, msgid=<id>, proto=ESMTPA,
               daemon=MTA-v4, relay=name [ip] (may be forged)
  sm-mta[pid]: QID: to=<b>, delay=..., mailer=esmtp, pri=..., stat=queued
  sm-mta[pid]: [QID: ]AUTH failure (LOGIN): authentication failure (-13) ..., user=admin, relay=[ip]
  sendmail[pid]: QID: from=www-data, ..., relay=www-data@localhost      (local submission)
sm-mta forks one process per connection, so the process id joins the AUTH line to
the messages of that connection; it is also the tail of the queue id
(`YMDhmsNNpppppp`, sendmail queue.c assign_queueid). A new connection on a reused
pid is told apart by the client address and a time gap.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from . import LogMessage, LogStats, Session, as_source, strip_angles, to_epoch
from .syslog import iter_syslog, key_values, looks_like_syslog

FORMAT = "sendmail"
PROGRAMS = ("sm-mta", "sendmail", "sm-msp-queue", "sm-msp")
# A pid reused this long after the last line of its previous connection is a new one.
SESSION_GAP_SECONDS = 600

_QID = re.compile(r"^([0-9A-Za-z]{8,20}):\s+(.*)$")
_RELAY = re.compile(r"relay=([^,]*)")
_AUTH_FAIL = re.compile(r"AUTH failure \(([^)]*)\)")
_USER = re.compile(r"\buser=([^,\s]*)")
_TO = re.compile(r"\bto=(.*?),\s*(?:ctladdr|delay|xdelay|mailer|pri|relay|dsn|stat)=")


def detect(first_bytes: bytes) -> int:
    return 30 if looks_like_syslog(first_bytes, tuple(p.encode() for p in PROGRAMS)) else 0


def parse_relay(text: str) -> tuple[str | None, str | None]:
    """(name, ip) from `relay=name [ip] (may be forged)`, `relay=[ip]` or `relay=user@host`."""
    match = _RELAY.search(text)
    if not match:
        return None, None
    value = match.group(1).strip()
    ip = None
    if "[" in value and "]" in value:
        ip = value[value.index("[") + 1: value.index("]")] or None
        value = value[: value.index("[")].strip()
    if ip and ip.lower().startswith("ipv6:"):
        ip = ip[5:]
    return (value or None), ip


def read_log(path: str | Path, stats: LogStats | None = None) -> Iterator[Session]:
    """Sessions per sendmail process (connection), with logins, failures and messages."""
    path = as_source(path)
    stats = stats if stats is not None else LogStats(str(path), FORMAT)
    sessions: list[Session] = []
    current: dict[tuple[str, int | None], Session] = {}
    messages: dict[str, LogMessage] = {}

    def session_for(key, when, ip=None, name=None, fresh=False) -> Session:
        session = current.get(key)
        stale = False
        if session is not None:
            last, now = to_epoch(session.end), to_epoch(when)
            stale = last is not None and now is not None and now - last > SESSION_GAP_SECONDS
            if ip and session.client_ip and ip != session.client_ip:
                stale = True
            if fresh and (session.messages or session.auth_user):
                stale = True
        if session is None or stale:
            session = Session(FORMAT, str(path), session_id=f"{key[0]}:{key[1]}@{when}", start=when,
                              client_ip=ip, client_name=name, details={"pid": key[1]})
            sessions.append(session)
            current[key] = session
        session.end = when
        if ip and not session.client_ip:
            session.client_ip = ip
        if name and not session.client_name:
            session.client_name = name
        return session

    for parsed in iter_syslog(path, stats):
        if parsed.program not in PROGRAMS:
            continue
        key = (parsed.host, parsed.pid)
        text = parsed.text
        qid = None
        match = _QID.match(text)
        if match and not text.startswith(("AUTH=", "STARTTLS=")):
            qid, text = match.group(1), match.group(2)
        if text.startswith("AUTH=server"):
            name, ip = parse_relay(text)
            session = session_for(key, parsed.time, ip, name, fresh=True)
            fields = key_values(text)
            session.auth_user = fields.get("authid") or None
            session.auth_method = fields.get("mech")
            continue
        fail = _AUTH_FAIL.search(text)
        if fail:
            name, ip = parse_relay(text)
            session = session_for(key, parsed.time, ip, name)
            user = _USER.search(text)
            session.failed_logins.append(user.group(1) if user else "")
            session.auth_method = session.auth_method or fail.group(1)
            continue
        if qid is None:
            continue
        fields = key_values(text)
        if "from" in fields:
            name, ip = parse_relay(text)
            local = ip is None and name is not None and "@" in name
            session = session_for(key, parsed.time, ip, None if local else name)
            message = messages.get(qid)
            if message is None:
                message = messages[qid] = LogMessage(time=parsed.time, queue_id=qid)
            message.sender = strip_angles(fields["from"])
            message.message_id = fields.get("msgid") or message.message_id
            try:
                message.size = int(fields.get("size", ""))
            except ValueError:
                pass
            if fields.get("proto"):
                session.details["protocol"] = fields["proto"]
            if local:
                session.details["local_user"] = name.split("@", 1)[0]
            if message not in session.messages:
                session.messages.append(message)
        elif "to" in fields and qid in messages:
            to_match = _TO.search(text)
            for rcpt in (to_match.group(1) if to_match else fields["to"]).split(","):
                rcpt = strip_angles(rcpt) or ""
                if rcpt and rcpt not in messages[qid].recipients:
                    messages[qid].recipients.append(rcpt)
    yield from sessions


read_sendmail_log = read_log

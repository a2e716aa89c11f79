"""Postfix syslog (mail.log / maillog / postlog): sessions joined to queue ids.

What Postfix writes (smtpd.c, cleanup, qmgr, pickup):
  postfix/smtpd[pid]: connect from host[ip]
  postfix/smtpd[pid]: QID: client=host[ip], sasl_method=PLAIN, sasl_username=alice
  postfix/smtpd[pid]: warning: host[ip]: SASL LOGIN authentication failed: ...[, sasl_username=u]
  postfix/smtpd[pid]: NOQUEUE: reject: RCPT from host[ip]: ...; from=<a> to=<b> proto=ESMTP helo=<h>
  postfix/smtpd[pid]: disconnect from host[ip] ehlo=1 auth=1 mail=1 ...
  postfix/cleanup[pid]: QID: message-id=<id>
  postfix/qmgr[pid]: QID: from=<a>, size=N, nrcpt=N (queue active)
  postfix/smtp[pid]: QID: to=<b>, relay=..., status=deferred (...)
  postfix/pickup[pid]: QID: uid=33 from=<www-data>
A connection is keyed by the smtpd process id between `connect` and `disconnect`;
messages by queue id. The log has the login but not, unless rejected, the HELO.
Failed logins named by Dovecot (`dovecot: auth: passwd-file(user,ip): ...`) in the
same file fill in user names Postfix leaves out.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from . import LogMessage, LogStats, Session, as_source, strip_angles
from .syslog import iter_syslog, key_values, looks_like_syslog

FORMAT = "postfix"

_QID = re.compile(r"^([0-9A-F]{6,}|[0-9BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz]{10,}z[0-9BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxy]+):\s+(.*)$")
_HOST_IP = re.compile(r"([^\s\[\]]*)\[([^\]]*)\]")
_SASL_FAIL = re.compile(r"warning: ([^\s\[]*)\[([^\]]*)\]: SASL (\S+) authentication failed(.*)$")
_DOVECOT_FAIL = re.compile(r"auth(?:-worker)?(?:\(\d+\))?: (?:Info: |Error: )?\w[\w-]*\(([^,()]*),([^,()]*)[,)].*?(unknown user|[Pp]assword mismatch|authentication failure|[Aa]uth failed)")


def detect(first_bytes: bytes) -> int:
    hits = looks_like_syslog(first_bytes, (b"postfix", b"postlog"))
    return 30 if hits >= 1 else 0


def _host_ip(text: str) -> tuple[str | None, str | None]:
    match = _HOST_IP.search(text)
    if not match:
        return None, None
    return match.group(1) or None, match.group(2) or None


def read_log(path: str | Path, stats: LogStats | None = None) -> Iterator[Session]:
    """Sessions (one per smtpd connection or pickup submission) with their messages."""
    path = as_source(path)
    stats = stats if stats is not None else LogStats(str(path), FORMAT)
    sessions: list[Session] = []
    open_by_pid: dict[tuple[str, int | None], Session] = {}
    messages: dict[str, LogMessage] = {}
    session_of_qid: dict[str, Session] = {}
    dovecot_names: dict[str, list[str]] = {}   # client ip -> user names Dovecot refused

    def session_for(key: tuple[str, int | None], when: str | None, name=None, ip=None) -> Session:
        session = open_by_pid.get(key)
        if session is None or (ip and session.client_ip and session.client_ip != ip):
            session = Session(FORMAT, str(path), session_id=f"{key[0]}[{key[1]}]@{when}", start=when,
                              client_name=name, client_ip=ip)
            sessions.append(session)
            open_by_pid[key] = session
        return session

    def message_for(qid: str, when: str | None) -> LogMessage:
        message = messages.get(qid)
        if message is None:
            message = messages[qid] = LogMessage(time=when, queue_id=qid)
        return message

    for parsed in iter_syslog(path, stats):
        program = parsed.program
        text = parsed.text
        key = (parsed.host, parsed.pid)
        if program.startswith("dovecot"):
            match = _DOVECOT_FAIL.search(text)
            if match and match.group(1):
                dovecot_names.setdefault(match.group(2), []).append(match.group(1))
            continue
        if not program.startswith(("postfix", "postlog")):
            continue
        service = program.split("/", 1)[1] if "/" in program else program
        if service.endswith("smtpd"):
            if text.startswith("connect from "):
                open_by_pid.pop(key, None)
                name, ip = _host_ip(text)
                session_for(key, parsed.time, name, ip)
                continue
            if text.startswith("disconnect from "):
                session = open_by_pid.pop(key, None)
                if session is not None:
                    session.end = parsed.time
                    session.details["counters"] = text.split("]", 1)[-1].strip()
                continue
            match = _SASL_FAIL.match(text)
            if match:
                session = session_for(key, parsed.time, match.group(1) or None, match.group(2) or None)
                user = key_values(match.group(4)).get("sasl_username", "")
                if user.startswith("("):  # "(unavailable)": the SASL server went away
                    user = ""
                session.failed_logins.append(user)
                session.auth_method = session.auth_method or match.group(3)
                continue
        match = _QID.match(text)
        if not match:
            if "reject:" in text and service.endswith("smtpd"):
                fields = key_values(text)
                session = open_by_pid.get(key)
                if session is not None and fields.get("helo"):
                    session.helo = session.helo or strip_angles(fields["helo"])
            continue
        qid, rest = match.group(1), match.group(2)
        fields = key_values(rest)
        if service.endswith("smtpd") and rest.startswith("client="):
            name, ip = _host_ip(rest)
            session = session_for(key, parsed.time, name, ip)
            if fields.get("sasl_username"):
                session.auth_user = fields["sasl_username"]
                session.auth_method = fields.get("sasl_method")
            if "helo" in fields:
                session.helo = strip_angles(fields["helo"])
            message = message_for(qid, parsed.time)
            if message not in session.messages:
                session.messages.append(message)
            session_of_qid[qid] = session
            continue
        if service == "pickup" and ("uid=" in rest or "from=" in rest):
            session = Session(FORMAT, str(path), session_id=f"pickup:{qid}", start=parsed.time,
                              end=parsed.time, client_ip=None, client_name="localhost")
            session.details["local_uid"] = fields.get("uid")
            session.details["local_sender"] = strip_angles(fields.get("from"))
            sessions.append(session)
            message = message_for(qid, parsed.time)
            session.messages.append(message)
            session_of_qid[qid] = session
            continue
        message = message_for(qid, parsed.time)
        if "message-id" in fields:
            message.message_id = fields["message-id"] or None
        if "from" in fields and message.sender is None:
            message.sender = strip_angles(fields["from"])
        if "size" in fields and message.size is None:
            try:
                message.size = int(fields["size"])
            except ValueError:
                pass
        if "to" in fields:
            rcpt = strip_angles(fields["to"])
            if rcpt and rcpt not in message.recipients:
                message.recipients.append(rcpt)
        if "sasl_username" in fields and qid in session_of_qid:
            session_of_qid[qid].auth_user = session_of_qid[qid].auth_user or fields["sasl_username"]

    for session in sessions:
        names = dovecot_names.get(session.client_ip or "")
        if names:
            for index, user in enumerate(session.failed_logins):
                if not user and names:
                    session.failed_logins[index] = names.pop(0)
    yield from sessions


read_postfix_log = read_log

"""Attribution: which authenticated account sent the queued mail, and is it compromised.

Two public steps (names are stable; queuetool.analysis looks them up):

    enrich_records(records, logs) -> Iterator[QueuedMessage]
        fills auth_user / auth_evidence (and client, HELO, envelope recipients where
        the spool lacks them) from the server's own Received hops and from logs.
    trace(source, logs=[...], settings=...) -> TraceResult
        per-account (and per unauthenticated relay client) entries, most suspicious
        first, each with the evidence and concrete remedy steps.
    account_verdicts(accounts, logset) -> {account: verdict}
        the same judgement over analysis.AccountStats, for the scorer's
        `account_trace_verdict` rule.

Evidence strength: spool metadata (the reader's `spool:...`) > the server's own
Received hops (`header:...`) > logs (`log:postfix`, `log:iis-w3c+event1708` ...). A
weaker source never overwrites a stronger one. The heuristics are in docs/trace.md.
"""
from __future__ import annotations

import bisect
import collections
import email.utils
import ipaddress
import re
import statistics
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .logs import LogEvent, LogMessage, LogSet, Session, iso_from_parts, read_logs, to_epoch
from .logs.windows_events import account_name, auth_1708, failed_logon
from .model import QueuedMessage
from .received import header_auth, parse_chain

# Event 1708 <-> W3C AUTH line: the largest gap (seconds) still taken as the same login.
JOIN_WINDOW_SECONDS = 120
# Exports carry the exporting machine's local time: offsets tried, in seconds.
CLOCK_OFFSETS = [0] + [sign * step * 1800 for step in range(1, 29) for sign in (1, -1)]
# How many 1708 events the clock-offset search looks at (evenly spread).
OFFSET_SAMPLE = 500
# Log message <-> queued message by Message-ID: the largest arrival gap accepted.
MESSAGE_ID_WINDOW_SECONDS = 6 * 3600
SET_CAP = 256

UNNAMED_LOGIN = "(authenticated)"
VERDICT_RANK = {"compromised": 0, "suspicious": 1, "normal": 2}
COMPROMISED_POINTS = 6.0
# More recipients than this in one hour from one account is a signal (Exim wiki / postfwd style caps).
RECIPIENTS_PER_HOUR = 50
SUSPICIOUS_POINTS = 3.0


# ---------------------------------------------------------------- joining logs


def normalize_message_id(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().strip("<>").strip().lower()
    return value or None


def unique_events(events: Iterable[LogEvent]) -> Iterator[LogEvent]:
    """Each event once: the same log exported twice (CSV and text) must not count twice."""
    seen: set[tuple] = set()
    for event in events:
        key = (event.time, event.event_id, event.provider, " ".join((event.message or "").split())[:500])
        if key in seen:
            continue
        seen.add(key)
        yield event


def _event_logins(events: Iterable[LogEvent]) -> list[tuple[float | None, str, str, LogEvent]]:
    out = []
    for event in unique_events(events):
        found = auth_1708(event)
        if found:
            client, _method, user = found
            out.append((to_epoch(event.time), client.lower(), user, event))
    return out


def join_event_1708(logset: LogSet) -> dict[str, Any]:
    """Name the login of IIS W3C sessions from Event 1708 (client + time window).

    The export's clock may be off by whole half-hours (local time, skew): the offset
    that matches the most events is used and reported. Returns what was joined.
    """
    logins = _event_logins(logset.events)
    w3c = [s for s in logset.sessions if s.source == "iis-w3c" and s.details.get("auth_status")]
    report: dict[str, Any] = {"events_1708": len(logins), "w3c_auth_sessions": len(w3c), "joined": 0,
                              "clock_offset_seconds": 0}
    if not logins or not w3c:
        return report
    # sessions by every name the client may go by, sorted by AUTH time (bisect per event)
    by_client: dict[str, list[tuple[float, int, Session]]] = {}
    for number, session in enumerate(w3c):
        when = to_epoch(session.details.get("auth_time") or session.start)
        if when is None:
            continue
        for name in {(session.client_ip or "").lower(), (session.helo or "").lower(),
                     (session.client_name or "").lower()} - {""}:
            by_client.setdefault(name, []).append((when, number, session))
    for entries in by_client.values():
        entries.sort(key=lambda item: (item[0], item[1]))

    def candidates(when: float | None, client: str, offset: int) -> list[tuple[float, int, Session]]:
        entries = by_client.get(client)
        if when is None or not entries:
            return []
        target = when + offset
        low = bisect.bisect_left(entries, target - JOIN_WINDOW_SECONDS, key=lambda item: item[0])
        high = bisect.bisect_right(entries, target + JOIN_WINDOW_SECONDS, key=lambda item: item[0])
        return entries[low:high]

    sample = logins[:: max(1, len(logins) // OFFSET_SAMPLE)]
    best_offset, best_hits = 0, -1
    for offset in CLOCK_OFFSETS:
        hits = sum(1 for when, client, _u, _e in sample if candidates(when, client, offset))
        if hits > best_hits:
            best_offset, best_hits = offset, hits
    taken: set[int] = set()
    for when, client, user, _event in sorted(logins, key=lambda item: item[0] or 0):
        options = [item for item in candidates(when, client, best_offset) if item[1] not in taken]
        if not options:
            continue
        _time, number, session = min(options, key=lambda item: (abs((when or 0) + best_offset - item[0]), item[1]))
        taken.add(number)
        session.auth_user = account_name(user)
        session.details["auth_user_logged"] = user
        session.details["auth_evidence"] = "log:iis-w3c+event1708"
        report["joined"] += 1
    report["clock_offset_seconds"] = best_offset
    return report


def join_exchange_sessions(logset: LogSet) -> int:
    """Give tracking-log RECEIVE sessions the login of their protocol-log session."""
    protocol = {s.session_id: s for s in logset.sessions if s.source == "exchange-protocol" and s.session_id}
    joined = 0
    for session in logset.sessions:
        if session.source != "exchange-tracking" or not session.session_id:
            continue
        origin = protocol.get(session.session_id)
        if origin is None:
            continue
        session.auth_user = session.auth_user or origin.auth_user
        session.helo = session.helo or origin.helo
        session.details["auth_evidence"] = "log:exchange-tracking+exchange-protocol"
        joined += 1
    return joined


@dataclass
class LogIndex:
    """Log sessions indexed for joining to queue records (built once per LogSet)."""

    logset: LogSet
    by_queue_id: dict[tuple[str, str], tuple[Session, LogMessage]] = field(default_factory=dict)
    by_message_id: dict[str, list[tuple[Session, LogMessage]]] = field(default_factory=dict)
    joins: dict[str, Any] = field(default_factory=dict)
    by_sendmail_pid: dict[int, list[Session]] = field(default_factory=dict)

    @classmethod
    def build(cls, logset: LogSet) -> "LogIndex":
        index = cls(logset)
        index.joins["event1708"] = join_event_1708(logset)
        index.joins["exchange"] = join_exchange_sessions(logset)
        for session in logset.sessions:
            if session.source == "sendmail" and isinstance(session.details.get("pid"), int):
                index.by_sendmail_pid.setdefault(session.details["pid"], []).append(session)
            for message in session.messages:
                if message.queue_id and session.source in QUEUE_ID_SOURCES:
                    index.by_queue_id[(QUEUE_ID_SOURCES[session.source], message.queue_id)] = (session, message)
                key = normalize_message_id(message.message_id)
                if key:
                    index.by_message_id.setdefault(key, []).append((session, message))
        return index

    def find(self, record: QueuedMessage) -> tuple[Session, LogMessage] | None:
        """The log session that submitted `record`: by queue id, else Message-ID + time."""
        hit = self.by_queue_id.get((record.mta, record.id))
        if hit is not None:
            return hit
        if record.mta == "sendmail":
            pid = _sendmail_pid(record)
            session = _sendmail_by_pid(self.by_sendmail_pid.get(pid, []), record) if pid is not None else None
            if session is not None:
                return session, LogMessage(queue_id=record.id)
        key = normalize_message_id(record.message_id)
        options = self.by_message_id.get(key or "", [])
        if not options:
            return None
        arrival = to_epoch(record.arrival)
        if arrival is None:
            return max(options, key=lambda o: o[0].auth_user is not None)

        def gap(option: tuple[Session, LogMessage]) -> float:
            when = to_epoch(option[1].time or option[0].start)
            return abs(when - arrival) if when is not None else float("inf")

        best = min(options, key=lambda o: (gap(o), o[0].auth_user is None))
        return best if gap(best) <= MESSAGE_ID_WINDOW_SECONDS or len(options) == 1 else None


def _sendmail_pid(record: QueuedMessage) -> int | None:
    """The sm-mta process id: the reader's, else the queue id's tail (YMDhmsNN + pid)."""
    pid = record.details.get("pid")
    if isinstance(pid, int):
        return pid
    match = re.match(r"^[0-9A-Za-z]{8}(\d{6,})$", record.id or "")
    return int(match.group(1)) if match else None


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _sendmail_id_time(queue_id: str, year: int) -> float | None:
    """UTC time a sendmail queue id encodes (`YMDhmsNN...`, sendmail queue.c), in `year`."""
    try:
        month, day, hour, minute, second = (_BASE62.index(c) for c in queue_id[1:6])
    except (ValueError, IndexError):
        return None
    return to_epoch(iso_from_parts(year, month + 1, day, hour, minute, second))


def _sendmail_by_pid(sessions: list[Session], record: QueuedMessage) -> Session | None:
    """The connection of a unit the log never saw by queue id (e.g. caught mid-DATA):
    same sm-mta pid, started shortly before the unit's arrival (or its queue id's time)."""
    best, best_gap = None, SENDMAIL_PID_WINDOW_SECONDS
    for session in sessions:
        start = to_epoch(session.start)
        if start is None:
            continue
        when = to_epoch(record.arrival) or _sendmail_id_time(record.id, int(session.start[:4]))
        if when is None or start > when + JOIN_WINDOW_SECONDS:
            continue
        if when - start <= best_gap:
            best, best_gap = session, when - start
    return best


# A sendmail connection is joined to a unit by pid only this close before its arrival.
SENDMAIL_PID_WINDOW_SECONDS = 3600

QUEUE_ID_SOURCES = {"postfix": "postfix", "exim": "exim", "sendmail": "sendmail"}
def _as_index(logs: LogIndex | LogSet | Sequence[str | Path] | None) -> LogIndex | None:
    if logs is None:
        return None
    if isinstance(logs, LogIndex):
        return logs
    if isinstance(logs, LogSet):
        cached = getattr(logs, "_trace_index", None)
        if cached is None:
            cached = LogIndex.build(logs)
            logs._trace_index = cached  # type: ignore[attr-defined]
        return cached
    paths = list(logs)
    return LogIndex.build(read_logs(paths)) if paths else None


def enrich_record(record: QueuedMessage, index: LogIndex | None, server_names: Iterable[str] = ()) -> None:
    """Fill one record's login (and missing envelope/client facts) from headers and logs."""
    if record.headers:
        found = header_auth(record.headers, server_names)
        if found.spoofed_markers:
            record.details["spoofed_auth_markers"] = found.spoofed_markers[:5]
        if not record.auth_user and found.auth_user:
            record.auth_user, record.auth_evidence = found.auth_user, found.evidence
        elif not record.auth_user and found.authenticated:
            record.details["header_authenticated"] = found.evidence
        record.client_ip = record.client_ip or found.client_ip
        record.helo = record.helo or found.helo
    if index is None:
        return
    hit = index.find(record)
    if hit is None:
        return
    session, message = hit
    evidence = session.details.get("auth_evidence") or f"log:{session.source}"
    if session.auth_user and not record.auth_user:
        record.auth_user = session.auth_user
        record.auth_evidence = evidence
    elif session.auth_user and record.auth_user and record.auth_user.lower() != session.auth_user.lower():
        record.details["log_auth_user"] = f"{session.auth_user} ({evidence})"
    record.client_ip = record.client_ip or session.client_ip
    record.client_name = record.client_name or session.client_name
    record.helo = record.helo or session.helo
    if record.sender is None and message.sender is not None:
        record.sender = message.sender
    if not record.recipients and not record.done_recipients and message.recipients:
        record.recipients = list(message.recipients)
        record.details["recipients_from"] = f"log:{session.source}"
    submitter = session.details.get("local_user") or session.details.get("local_sender")
    if submitter or session.details.get("local_uid"):
        submitter = submitter.split("@", 1)[0] if submitter else f"uid {session.details.get('local_uid')}"
        record.details.setdefault("local_submitter", submitter)


def enrich_records(records: Iterable[QueuedMessage], logs: LogIndex | LogSet | Sequence[str | Path] | None,
                   server_names: Iterable[str] = ()) -> Iterator[QueuedMessage]:
    """Yield `records` with auth_user/auth_evidence (and missing envelope facts) filled.

    `logs` is a LogSet (from logs.read_logs), a list of log paths, or None for headers only.
    Records need their headers (scan with keep_headers=True) for the header step.
    """
    index = _as_index(logs)
    names = tuple(server_names)
    for record in records:
        try:
            enrich_record(record, index, names)
        except Exception as exc:  # noqa: BLE001 - enrichment must never stop a scan
            record.add_error(f"trace enrichment failed: {type(exc).__name__}: {exc}")
        yield record


# ---------------------------------------------------------------- per-account judgement


@dataclass
class AccountTrace:
    """One entry of the trace: an account, or an unauthenticated client that relayed."""

    account: str | None
    client: str | None = None
    kind: str = "account"            # account | relay | local
    messages: int = 0
    flagged: int = 0
    recipients: int = 0
    recipient_domains: set[str] = field(default_factory=set)
    outside_domains: set[str] = field(default_factory=set)
    client_ips: set[str] = field(default_factory=set)
    helos: set[str] = field(default_factory=set)
    first_seen: str | None = None
    last_seen: str | None = None
    from_mismatch: int = 0
    failed_logins: int = 0
    failed_before_success: int = 0
    log_logins: int = 0
    ips_per_day: dict[str, set[str]] = field(default_factory=dict)
    per_hour: collections.Counter = field(default_factory=collections.Counter)
    recipients_per_hour: collections.Counter = field(default_factory=collections.Counter)
    max_recipients: int = 0
    evidence_sources: collections.Counter = field(default_factory=collections.Counter)
    mtas: set[str] = field(default_factory=set)
    score: float = 0.0
    verdict: str = "normal"
    evidence: list[str] = field(default_factory=list)
    remedy: list[str] = field(default_factory=list)

    def see_time(self, when: str | None) -> None:
        if when:
            self.first_seen = min(self.first_seen or when, when)
            self.last_seen = max(self.last_seen or when, when)

    def see_ip(self, ip: str | None, when: str | None) -> None:
        if ip and len(self.client_ips) < SET_CAP:
            self.client_ips.add(ip)
            if when:
                self.ips_per_day.setdefault(when[:10], set()).add(ip)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account, "client": self.client, "kind": self.kind,
            "messages": self.messages, "flagged": self.flagged, "recipients": self.recipients,
            "recipient_domains": sorted(self.recipient_domains), "client_ips": sorted(self.client_ips),
            "helos": sorted(self.helos), "first_seen": self.first_seen, "last_seen": self.last_seen,
            "from_mismatch": self.from_mismatch, "failed_logins": self.failed_logins,
            "verdict": self.verdict, "score": round(self.score, 2), "evidence": list(self.evidence),
            "remedy": list(self.remedy), "auth_evidence": dict(self.evidence_sources),
        }


def _domain(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].strip().strip(">").lower().rstrip(".") or None


def _is_ours(domain: str | None, settings: Any) -> bool:
    checker = getattr(settings, "is_ours", None)
    if checker is not None:
        return bool(checker(domain))
    domains = set(getattr(settings, "local_domains", ()) or ())
    return bool(domain) and any(domain == d or domain.endswith("." + d) for d in domains)


def _has_domains(settings: Any) -> bool:
    return bool(getattr(settings, "our_domains", None) or getattr(settings, "local_domains", None))


def _owned(account: str, address: str | None, settings: Any) -> bool:
    """Is `address` plausibly the account's own (same local part, our or the login's domain)?"""
    if not address or "@" not in address:
        return True  # null sender or bare local name: nothing claimed
    local, domain = address.lower().rsplit("@", 1)
    login_local, _, login_domain = account_name(account).partition("@")
    if login_domain and domain != login_domain and not _is_ours(domain, settings):
        return False
    if _has_domains(settings) and not _is_ours(domain, settings) and domain != login_domain:
        return False
    return local == login_local or local.startswith(login_local + "+")


def _header_from(record: QueuedMessage) -> str | None:
    value = record.header_from
    if not value:
        return None
    return email.utils.parseaddr(value)[1] or None


def _odd_helo(helo: str, client_ip: str | None) -> bool:
    """A HELO that no mail client configured by an admin would send."""
    value = helo.strip().strip("[]")
    if not value:
        return True
    try:
        ipaddress.ip_address(value)
        return value != (client_ip or value)  # a literal of another address
    except ValueError:
        pass
    return "." not in value


def judge(entry: AccountTrace) -> None:
    """Score an entry with the documented heuristics; set verdict, evidence, remedy."""
    points = 0.0
    evidence: list[str] = []
    strong = 0
    if entry.ips_per_day:
        day, ips = max(entry.ips_per_day.items(), key=lambda item: len(item[1]))
        if len(ips) >= 3:
            points += 2
            evidence.append(f"{len(ips)} client addresses on {day}")
    networks = {ip.rsplit(".", 1)[0] if "." in ip else ip for ip in entry.client_ips}
    if len(networks) >= 2 and entry.kind == "account":
        points += 1
        evidence.append(f"logins from {len(networks)} different networks")
    outside = len(entry.outside_domains)
    if outside >= 10:
        points += 2
        strong += 1
        evidence.append(f"mail to {outside} outside domains")
    elif outside >= 5:
        points += 1
        evidence.append(f"mail to {outside} outside domains")
    if entry.messages and entry.recipients / entry.messages >= 5:
        points += 1
        evidence.append(f"{entry.recipients / entry.messages:.1f} recipients per message")
    if entry.from_mismatch and entry.from_mismatch * 4 >= entry.messages:
        points += 3
        strong += 1
        evidence.append(f"{entry.from_mismatch} of {entry.messages} messages with a sender/From it does not own")
    if entry.per_hour:
        peak_hour, peak = entry.per_hour.most_common(1)[0]
        others = [n for hour, n in entry.per_hour.items() if hour != peak_hour]
        baseline = statistics.median(others) if others else 0
        if peak >= 10 and peak >= 5 * max(baseline, 1):
            points += 1
            evidence.append(f"burst of {peak} messages in the hour {peak_hour}:00 (baseline {baseline:g})")
    if entry.recipients_per_hour:
        hour, peak = entry.recipients_per_hour.most_common(1)[0]
        if peak >= RECIPIENTS_PER_HOUR:
            points += 1
            evidence.append(f"{peak} recipients in the hour {hour}:00")
    odd = sorted(h for h in entry.helos if _odd_helo(h, None))
    if len(entry.helos) >= 3:
        points += 1
        evidence.append(f"{len(entry.helos)} different HELOs: {', '.join(sorted(entry.helos)[:5])}")
    elif odd:
        points += 0.5
        evidence.append(f"HELO without a domain: {', '.join(odd[:3])}")
    if entry.failed_before_success >= 3:
        points += 2
        evidence.append(f"{entry.failed_before_success} failed logins before the first success")
    elif entry.failed_logins >= 3:
        points += 1
        evidence.append(f"{entry.failed_logins} failed logins")
    if entry.messages >= 3 and entry.flagged * 2 >= entry.messages:
        points += 2
        strong += 1
        evidence.append(f"{entry.flagged} of {entry.messages} messages flagged by the scorer")
    entry.score = points
    if entry.kind != "account":
        entry.verdict = "suspicious" if entry.outside_domains and entry.messages else "normal"
        if entry.kind == "relay" and entry.outside_domains:
            evidence.insert(0, f"unauthenticated client relayed {entry.messages} message(s) to outside domains")
        if entry.kind == "local" and entry.outside_domains:
            evidence.insert(0, f"submitted on the server without a login: {entry.messages} message(s) to outside domains")
    elif entry.account == UNNAMED_LOGIN:
        # several accounts may hide behind "authenticated": never call the mix compromised
        entry.verdict = "suspicious" if points >= SUSPICIOUS_POINTS else "normal"
        evidence.append("the login is not named in the queue: give the mail log (--log) to split by account")
    elif points >= COMPROMISED_POINTS and strong >= 1:
        entry.verdict = "compromised"
    elif points >= SUSPICIOUS_POINTS or (entry.messages == 0 and entry.failed_logins >= 3):
        entry.verdict = "suspicious"
        if entry.messages == 0 and entry.failed_logins >= 3:
            evidence.append("brute-force target (no message sent)")
    else:
        entry.verdict = "normal"
    entry.evidence = evidence
    entry.remedy = remedy_for(entry)


REMEDY_BY_MTA = {
    "smtpsvc": ["Exchange System Manager > SMTP virtual server > Properties > Access > Relay: clear "
                "'Allow all computers which successfully authenticate to relay, regardless of the list above' "
                "unless POP3/IMAP clients need it (KB 895853)",
                "Disable the Guest account and delete unused test/admin accounts; enforce strong passwords"],
    "exchange": ["Remove the account's right to relay (Receive connector permission "
                 "ms-Exch-SMTP-Accept-Any-Recipient) or restrict it to the addresses that need it",
                 "Check the Receive connectors' AuthMechanism and RemoteIPRanges"],
    "postfix": ["Postfix: smtpd_sender_login_maps plus reject_sender_login_mismatch in smtpd_sender_restrictions",
                "Postfix: limit per-client rates (smtpd_client_message_rate_limit, smtpd_client_recipient_rate_limit)"],
    "exim": ["Exim: a ratelimit ACL keyed on $authenticated_id "
             "(e.g. ratelimit = 100 / 1h / per_rcpt / user-$authenticated_id) in acl_smtp_rcpt",
             "Exim: check that senders match the login ($authenticated_id vs $sender_address)"],
    "sendmail": ["Sendmail: remove or re-key the account in the SASL database (saslpasswd2 -d) / PAM",
                 "Sendmail: rate limits (confCONNECTION_RATE_THROTTLE, ClientRate/ClientConn in the access db)"],
}
RELAY_REMEDY_BY_MTA = {
    "smtpsvc": "SMTP virtual server > Access > Relay: 'Only the list below' with an empty list; no connector "
               "with address space * may allow relaying (KB 895853, 324958)",
    "exchange": "Receive connectors: remove anonymous ms-Exch-SMTP-Accept-Any-Recipient / externally secured "
                "permissions from Internet-facing connectors",
    "postfix": "Postfix: take the client's network out of mynetworks; smtpd_relay_restrictions = "
               "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    "exim": "Exim: take the client's network out of relay_from_hosts / dc_relay_nets",
    "sendmail": "Sendmail: remove the client's network from the access db (RELAY) / relay-domains",
}


def remedy_for(entry: AccountTrace) -> list[str]:
    """Concrete steps, per MTA seen, for an entry that is not normal."""
    if entry.verdict == "normal":
        return []
    mtas = sorted(entry.mtas) or ["postfix"]
    steps: list[str] = []
    if entry.kind == "account" and not entry.messages:
        who = entry.account or "the account"
        return [f"Someone is guessing the password of {who}: if the account exists, give it a strong password "
                "(or disable it); block the guessing addresses at the firewall (fail2ban or similar)"]
    if entry.kind == "account":
        who = entry.account or "the account"
        steps.append(f"Reset the password of {who} now (or disable the account until its owner is reached); "
                     "end its open sessions (restart the SMTP service if credentials are cached)")
        for mta in mtas:
            steps.extend(REMEDY_BY_MTA.get(mta, []))
        if entry.messages:
            steps.append(f"Quarantine its queued mail: queuetool quarantine SPOOL --auth-user {who} --to QDIR")
    elif entry.kind == "relay":
        for mta in mtas:
            if mta in RELAY_REMEDY_BY_MTA:
                steps.append(RELAY_REMEDY_BY_MTA[mta])
        steps.append(f"Quarantine the relayed mail: queuetool quarantine SPOOL --where 'client_ip == \"{entry.client}\"' --to QDIR")
    else:
        steps.append("Find the script that submits mail locally (web application run as "
                     f"{entry.client or 'the web server user'}); disable it or fix its form handler")
        steps.append("Postfix: authorized_submit_users; Exim: trusted_users; Sendmail: restrict the MSP")
    if entry.messages:
        steps.append("Then check the server's address against block lists and request delisting")
    return steps


# ---------------------------------------------------------------- trace


@dataclass
class TraceResult:
    """What `trace` found: entries ranked most suspicious first, and what the logs gave."""

    accounts: list[AccountTrace]
    logs: list[dict[str, Any]] = field(default_factory=list)
    joins: dict[str, Any] = field(default_factory=dict)
    records: int = 0
    unattributed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"accounts": [entry.to_dict() for entry in self.accounts], "logs": self.logs,
                "joins": self.joins, "records": self.records, "unattributed": self.unattributed}


def _is_loopback(ip: str | None) -> bool:
    if not ip:
        return True
    try:
        return ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:
        return False


def account_key(login: str, settings: Any = None) -> str:
    """One name per account: `DOMAIN\\user`, `user@our.domain` and `user` are the same login."""
    name = account_name(login)
    local, at, domain = name.partition("@")
    if at and settings is not None and _is_ours(domain, settings):
        return local
    return name


def _received_for(record: QueuedMessage) -> list[str]:
    """The `for <addr>` of the server's own top hop: the recipient before alias expansion."""
    hops = parse_chain(record.headers[:40]) if record.headers else []
    return [hops[0].for_address] if hops and hops[0].for_address else []


def collect(records: Iterable[QueuedMessage], settings: Any, index: LogIndex | None) -> tuple[dict[str, AccountTrace], int, int]:
    """Per-account and per-relay-client entries from records (and log logins/failures)."""
    entries: dict[str, AccountTrace] = {}
    total = unattributed = 0
    for record in records:
        total += 1
        login = record.auth_user
        if not login and record.details.get("header_authenticated") and record.sender != "":
            login = UNNAMED_LOGIN  # (a null-sender DSN the server wrote itself is nobody's login)
        recipients = list(record.recipients) + list(record.done_recipients)
        domains = {d for d in (_domain(r) for r in recipients) if d}
        outside = {d for d in domains if not _is_ours(d, settings)} if _has_domains(settings) else set()
        if login:
            key = account_key(login, settings)
            entry = entries.setdefault(key, AccountTrace(account=key))
        else:
            # relay = an unauthenticated submission to outside only; mail that also reached
            # one of our mailboxes (inbound, alias expansion) is not relay
            addressed = {d for d in (_domain(a) for a in _received_for(record)) if d}
            if record.sender == "" or not outside or len(outside) < len(domains | addressed):
                unattributed += 1
                continue
            local = _is_loopback(record.client_ip)
            if local:
                who = record.details.get("local_submitter") or (record.sender or "unknown").split("@", 1)[0]
                entry = entries.setdefault(f"local:{who}", AccountTrace(account=None, client=str(who), kind="local"))
            else:
                if _is_ours(_domain(record.sender), settings):
                    unattributed += 1
                    continue
                entry = entries.setdefault(f"relay:{record.client_ip}", AccountTrace(
                    account=None, client=record.client_ip, kind="relay"))
        entry.messages += 1
        entry.mtas.add(record.mta)
        entry.flagged += record.verdict not in (None, "clean")
        entry.recipients += len(recipients)
        entry.max_recipients = max(entry.max_recipients, len(recipients))
        for domain in domains:
            if len(entry.recipient_domains) < SET_CAP:
                entry.recipient_domains.add(domain)
        entry.outside_domains.update(list(outside)[:SET_CAP])
        entry.see_ip(record.client_ip, record.arrival)
        if record.helo and len(entry.helos) < SET_CAP:
            entry.helos.add(record.helo)
        entry.see_time(record.arrival)
        if record.arrival:
            entry.per_hour[record.arrival[:13]] += 1
            entry.recipients_per_hour[record.arrival[:13]] += len(recipients)
        if record.auth_evidence:
            entry.evidence_sources[record.auth_evidence.split(" ", 1)[0]] += 1
        if entry.kind == "account" and login != UNNAMED_LOGIN:
            if not _owned(login, record.sender, settings) or not _owned(login, _header_from(record), settings):
                entry.from_mismatch += 1
    if index is not None:
        _add_log_logins(entries, index, settings)
    return entries, total, unattributed


def _add_log_logins(entries: dict[str, AccountTrace], index: LogIndex, settings: Any = None) -> None:
    """Logins and failed logins the logs saw, with or without queued mail."""
    first_success: dict[str, float] = {}
    for session in index.logset.sessions:
        if session.auth_user:
            key = account_key(session.auth_user, settings)
            when = to_epoch(session.start)
            if when is not None:
                first_success[key] = min(first_success.get(key, when), when)
            entry = entries.get(key)
            if entry is not None:
                entry.log_logins += 1
                entry.see_ip(session.client_ip, session.start)
                if session.helo and len(entry.helos) < SET_CAP:
                    entry.helos.add(session.helo)
    for _when, client, user, event in _event_logins(index.logset.events):
        key = account_key(user, settings)
        when = to_epoch(event.time)
        if when is not None:
            first_success[key] = min(first_success.get(key, when), when)
        entry = entries.get(key)
        if entry is not None:
            entry.log_logins += 1
            try:
                ipaddress.ip_address(client)
                entry.see_ip(client, event.time)
            except ValueError:
                pass
    failures: list[tuple[str, float | None]] = []
    for session in index.logset.sessions:
        for user in session.failed_logins:
            if user:
                failures.append((account_key(user, settings), to_epoch(session.start)))
    for event in unique_events(index.logset.events):
        found = failed_logon(event)
        if found and found[0]:
            failures.append((account_key(found[0], settings), to_epoch(event.time)))
    for key, when in failures:
        entry = entries.setdefault(key, AccountTrace(account=key))
        entry.failed_logins += 1
        success = first_success.get(key)
        if success is not None and when is not None and when <= success:
            entry.failed_before_success += 1


def found_logs(source: Any) -> list[Path]:
    """Logs inside a server tree given as SPOOL (spools.find_logs, where available)."""
    from . import spools as spools_pkg

    finder = getattr(spools_pkg, "find_logs", None)
    if finder is None or not isinstance(source, (str, Path)):
        return []
    try:
        return [Path(p) for p in finder(source)]
    except OSError:
        return []


def with_logs_below(logs: Iterable[str | Path], source: Any) -> list[Path]:
    """The given logs plus those found inside `source` that no given path already covers
    (a given directory covers every file below it), so nothing is read twice."""
    given = [Path(p) for p in logs]

    def covered(path: Path) -> bool:
        return any(path == g or g in path.parents for g in given)

    return given + [p for p in found_logs(source) if not covered(p)]


def trace(
    source: Any,
    *,
    logs: Sequence[str | Path] = (),
    settings: Any = None,
    mta: str | None = None,
    jobs: int = 1,
    progress: bool = False,
    logs_below: bool = True,
) -> TraceResult:
    """Rank the accounts (and unauthenticated relay clients) that queued mail in `source`.

    Records come from analysis.analyze (scored, so `flagged` means something, and
    enriched from `logs` through this module's hook); entries are judged with `judge`
    and sorted most suspicious first. `logs_below` adds the logs found inside `source`
    (a copied server tree).
    """
    from .analysis import analyze, infer_settings
    from .config import Settings

    settings = infer_settings(source, settings if settings is not None else Settings(), mta=mta)
    log_paths = with_logs_below(logs, source) if logs_below else [Path(p) for p in logs]
    logset = read_logs(log_paths) if log_paths else LogSet()
    index = LogIndex.build(logset) if log_paths else None
    stats_logs = [{"path": s.path, "format": s.format, "lines": s.lines, "junk": s.junk,
                   "junk_examples": s.junk_examples, "error": s.error} for s in logset.files]
    records = analyze(source, settings=settings, logs=log_paths, mta=mta, jobs=jobs, progress=progress,
                      keep_headers=True)
    # analysis enriches only when logs are given; the header step runs here either way
    entries, total, unattributed = collect(enrich_records(records, index), settings, index)
    for entry in entries.values():
        judge(entry)
    ranked = sorted(entries.values(), key=lambda e: (VERDICT_RANK[e.verdict], e.kind != "account",
                                                     -e.score, -e.messages, e.account or e.client or ""))
    return TraceResult(ranked, stats_logs, index.joins if index else {}, total, unattributed)


def account_verdicts(accounts: dict[str, Any], logset: Any) -> dict[str, str]:
    """Verdict per account from analysis.AccountStats (+ failed logins from the logs)."""
    index = _as_index(logset) if isinstance(logset, (LogSet, LogIndex)) else None
    out: dict[str, str] = {}
    entries: dict[str, AccountTrace] = {}
    for name, stats in accounts.items():
        key = account_key(name)
        entry = entries.setdefault(key, AccountTrace(account=key))
        entry.messages += stats.messages
        entry.flagged += stats.flagged
        entry.recipients += stats.recipients
        entry.recipient_domains |= set(stats.recipient_domains)
        entry.outside_domains |= set(getattr(stats, "outside_domains", stats.recipient_domains))
        entry.client_ips |= set(stats.client_ips)
        entry.helos |= set(stats.helos)
        entry.from_mismatch += stats.from_mismatch
        entry.first_seen, entry.last_seen = stats.first_seen, stats.last_seen
    if index is not None:
        _add_log_logins(entries, index)
    for name in accounts:
        entry = entries[account_key(name)]
        judge(entry)
        out[name] = entry.verdict
    return out


class _CallableModule(types.ModuleType):
    """`queuetool.trace(spool, logs=[...])` calls `trace()`; `queuetool.trace.enrich_records`
    and the other names stay reachable (the package exports the module, not a function that
    would hide it)."""

    def __call__(self, *args: Any, **kwargs: Any) -> TraceResult:
        return trace(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

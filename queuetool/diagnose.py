"""KB 895853's relay troubleshooting guide, walked over a queue, its NDRs and its logs.

A senior admin reads the queue, the NDRs and the Application log and decides: open
relay or compromised account? Which of the six 5.7.1/5.7.3 scenarios? Which block list,
which stuck destination? `diagnose()` makes the same walk and returns findings, each
with the evidence it rests on (counts, example ids and lines), the likely cause, what
to check to be sure, the remedy and references. A finding never claims more than its
evidence: where several causes fit, it names them all and says what tells them apart.
Codes and event ids the tables do not know are reported generically, never dropped.

Inputs, all optional except the spool: records from the scan (status text, reader
`details`, DSNs found in any queue via `queuetool.dsn`), log files via
`queuetool.logs` (Windows event exports as `LogEvent`s; mail/protocol log lines are
grepped for SMTP replies), and account verdicts from `queuetool.trace` when present.
"""
from __future__ import annotations

import collections
import csv
import ipaddress
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .model import QueuedMessage
from .status_codes import (
    StatusInfo, describe_code, find_blocklist, is_auth_required,
    is_misleading_permission_text, is_relay_denied, parse_status,
)

SEVERITIES = ("critical", "high", "medium", "low", "info")
EXAMPLES = 5                 # example ids/lines kept per group
GROUP_ROWS = 10              # rows kept in a grouped evidence table
STUCK_MIN_MESSAGES = 5       # waiting messages for one destination before it is "stuck"
FANOUT_DOMAINS = 5           # outside domains one account/client must reach to look like abuse
DSN_READ_LIMIT = 2000        # DSN bodies read per run (each is a full message read)
LOG_LINE_SCAN_LIMIT = 2_000_000
LOG_REPEAT_KEYS = 1_000_000  # (origin, client, recipient, code) keys remembered to skip retries
WAITING_QUEUES = frozenset({"deferred", "queued", "queue", "active", "incoming", "hold", "frozen"})
DSN_SUBJECT = re.compile(r"undeliver|delivery status|returned mail|mail delivery|failure notice|"
                         r"delivery fail|non.?delivery", re.I)

# Event ids KB 895853 and its neighbours name; text per /work/shared/research (UNCONFIRMED
# texts are read generically: the id is what matters).
KNOWN_EVENTS: dict[int, tuple[str, str]] = {
    1701: ("medium", "Exchange 2000/2003 transport event 1701 (KB 895853 scenarios 3 and 6)"),
    1707: ("medium", "Exchange 2000/2003 transport event 1707 (KB 895853 scenario 4)"),
    1708: ("info", "SMTP authentication completed (names the account that logged on)"),
    1709: ("medium", "Exchange 2000/2003 transport event 1709 (KB 895853 scenarios 3, 4, 6)"),
    1710: ("medium", "Exchange 2000/2003 transport event 1710 (KB 895853 scenarios 3, 4, 6)"),
    4000: ("low", "Outbound SMTP connection failure (DNS, host down, connection dropped)"),
    4001: ("medium", "Exchange transport event 4001 (KB 895853 relay-abuse symptom)"),
    7002: ("low", "Exchange transport event 7002 (floods the log during relay abuse)"),
    7004: ("medium", "SMTP protocol error: a remote host refused a command (KB 895853 symptom)"),
    3018: ("low", "Exchange transport event 3018 (seen flooding logs during relay abuse)"),
    429: ("high", "SMTPSVC: virtual server has an invalid mail queue directory"),
    1035: ("medium", "Exchange 2007+: inbound authentication failed (LogonDenied)"),
    1012: ("medium", "Exchange 2010: authentication failure limit reached"),
    1024: ("medium", "Exchange 2010: Send-As denied for an authenticated user"),
}
_EVENT_7004 = re.compile(r'remote host\s+"?([^",]+)"?,?\s+responded to the SMTP command\s+"?([^"]+)"?'
                         r'\s+with\s+"?([^"]*)"?', re.I)
_VIRTUAL_SERVER = re.compile(r"virtual server(?: ID)?\s+(\d+)|SMTPSVC(\d+)", re.I)
_ADDRESS = re.compile(r"<?([^\s<>@\"']+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")
_LOG_CLIENT = re.compile(r"(?:from|relay=|H=)\s*([A-Za-z0-9._-]*)\s*\[([0-9A-Fa-f.:]+)\]")
_LOG_TO = re.compile(r"\bto=<([^>]*)>|\bRCPT\s+(?:TO:)?\s*<([^>]*)>|(?:^|\s)\*\* (\S+@\S+)|"
                     r"(?:^|\s)== (\S+@\S+)", re.I)
_W3C_FIELDS = "#Fields:"


# ------------------------------------------------------------------ result types


@dataclass
class Finding:
    """One conclusion: what was seen (evidence), why (cause), how to be sure, what to do."""

    id: str
    severity: str
    title: str
    evidence: dict[str, Any]
    cause: str
    confirm: list[str]
    remedy: list[str]
    references: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "title": self.title,
                "evidence": self.evidence, "cause": self.cause, "confirm": list(self.confirm),
                "remedy": list(self.remedy), "references": list(self.references)}


@dataclass
class DiagnoseResult:
    """All findings, most severe first, plus what was read to reach them."""

    findings: list[Finding] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)

    def by_id(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def ids(self) -> list[str]:
        return [f.id for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [f.to_dict() for f in self.findings], "inputs": self.inputs}


@dataclass
class Observation:
    """One delivery status seen somewhere: a record's status, a DSN field, a log reply.

    `origin` is who gave the reply: "local" (this server answered a client), "remote"
    (another server answered this one) or "unknown".
    """

    status: StatusInfo
    where: str
    origin: str = "unknown"
    recipient: str | None = None
    client_ip: str | None = None
    authenticated: bool | None = None
    virtual_server: str | None = None
    sender: str | None = None

    @property
    def domain(self) -> str | None:
        return domain_of(self.recipient)


@dataclass
class EventEntry:
    """One Windows event, reduced to what diagnose reads (from a logs.LogEvent)."""

    event_id: int | None
    message: str
    where: str
    provider: str | None = None
    time: str | None = None
    strings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ small helpers


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].strip().strip(">").rstrip(".").lower() or None


def _our_domains(settings: Any) -> frozenset[str]:
    if settings is None:
        return frozenset()
    if isinstance(settings, dict):
        names = [*settings.get("local_domains", ()), *settings.get("relay_domains", ()),
                 *settings.get("shared_domains", ())]
        return frozenset(d.lower() for d in names)
    ours = getattr(settings, "our_domains", None)
    if callable(ours):
        return frozenset(ours())
    names = [*getattr(settings, "local_domains", ()), *getattr(settings, "relay_domains", ()),
             *getattr(settings, "shared_domains", ())]
    return frozenset(d.lower() for d in names)


def _is_ours(domain: str | None, ours: frozenset[str]) -> bool:
    if not domain:
        return False
    return any(domain == d or domain.endswith("." + d) for d in ours)


# Internal = RFC 1918 / loopback / link-local / ULA. Not `is_private`: that also covers the
# documentation ranges (192.0.2.0/24 ...) the corpora use for outside clients.
_INTERNAL_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10"))


def _is_internal_ip(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip.split("%")[0].strip("[]"))
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in _INTERNAL_NETS)


def _clip(text: Any, width: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "~"


def _top(counter: collections.Counter, n: int = GROUP_ROWS) -> list[dict[str, Any]]:
    return [{"key": key, "count": count} for key, count in counter.most_common(n)]


# ------------------------------------------------------------------ collecting evidence


@dataclass
class _Account:
    messages: int = 0
    flagged: int = 0
    scored: int = 0
    domains: set = field(default_factory=set)
    clients: set = field(default_factory=set)
    examples: list = field(default_factory=list)


@dataclass
class _CodeGroup:
    """Running aggregate of one status code: counts and groupings, a few examples."""

    count: int = 0
    klass: str | None = None
    domains: collections.Counter = field(default_factory=collections.Counter)
    hosts: collections.Counter = field(default_factory=collections.Counter)
    origins: collections.Counter = field(default_factory=collections.Counter)
    clients: collections.Counter = field(default_factory=collections.Counter)   # our replies, by client
    examples: list = field(default_factory=list)


class _Observations:
    """Statuses seen, in bounded memory: every one is counted in its code's group; only
    those the scenario/block-list checks read (class 4/5 with policy, relay, auth,
    block-list or permission wording, 5.x.x and 530) are kept, up to KEEP_LIMIT."""

    KEEP_LIMIT = 200_000

    def __init__(self) -> None:
        self.groups: dict[str, _CodeGroup] = {}
        self.kept: list[Observation] = []
        self.total = 0
        self.dropped = 0

    def add(self, obs: Observation) -> None:
        self.total += 1
        group = self.groups.setdefault(_group_code(obs.status), _CodeGroup(klass=obs.status.klass))
        group.count += 1
        group.domains[obs.domain or "(unknown)"] += 1
        group.hosts[obs.status.remote_host or "(not stated)"] += 1
        if obs.origin == "local" and obs.client_ip:
            group.clients[obs.client_ip] += 1
        group.origins[obs.origin] += 1
        if len(group.examples) < EXAMPLES:
            group.examples.append(obs)
        if _worth_keeping(obs):
            if len(self.kept) < self.KEEP_LIMIT:
                self.kept.append(obs)
            else:
                self.dropped += 1

    def extend(self, observations: Iterable[Observation]) -> None:
        for obs in observations:
            self.add(obs)

    def count(self, code: str) -> int:
        group = self.groups.get(code)
        return group.count if group else 0


def _group_code(status: StatusInfo) -> str:
    """The code a status is grouped under: a failed SMTP AUTH (535) stays 535 whatever
    enhanced code the server added (Exchange 2007+ says 5.7.3, others 5.7.8)."""
    return "535" if status.basic == 535 else status.code


def _worth_keeping(obs: Observation) -> bool:
    status = obs.status
    if status.klass == "5" or status.basic == 530:
        return True
    if status.klass != "4":
        return False
    text = status.text
    return (bool(status.enhanced and status.enhanced.startswith("4.7.")) or is_relay_denied(text)
            or is_auth_required(text) or find_blocklist(text) is not None)


@dataclass
class _Facts:
    """Everything gathered in one pass over records, logs and events."""

    records: int = 0
    unreadable: int = 0
    scored: int = 0
    flagged: int = 0
    flagged_examples: list = field(default_factory=list)
    queues: collections.Counter = field(default_factory=collections.Counter)
    outside_domains: set = field(default_factory=set)
    first_seen_domain: dict = field(default_factory=dict)   # domain -> earliest arrival
    waiting: dict = field(default_factory=dict)             # domain -> [count, oldest, ids, statuses]
    accounts: dict = field(default_factory=dict)            # auth_user -> _Account
    open_relay: dict = field(default_factory=dict)          # client ip -> _Account
    observations: _Observations = field(default_factory=_Observations)
    events: list = field(default_factory=list)
    dsn_read: int = 0
    dsn_parser: bool = False
    notes: list = field(default_factory=list)
    log_files: list = field(default_factory=list)
    virtual_servers: set = field(default_factory=set)
    duplicate_events: int = 0
    ids_with_status: set = field(default_factory=set)
    newest_arrival: str | None = None
    log_repeats: set = field(default_factory=set)


def _record_observations(record: QueuedMessage) -> Iterator[Observation]:
    """Per-recipient statuses from the reader's details when it has them, else `status`."""
    where = f"record:{record.id}"
    rcpt = record.recipients[0] if record.recipients else None
    authenticated = bool(record.auth_user) if record.auth_user is not None else None
    found = False
    for recipient, text in _status_texts(record.details):
        info = parse_status(text)
        if info is not None:
            found = True
            yield Observation(info, where, "remote" if info.remote_host else "unknown",
                              recipient or rcpt, record.client_ip, authenticated, sender=record.sender)
    if record.status and not found:
        info = parse_status(record.status)
        if info is not None:
            yield Observation(info, where, "remote" if info.remote_host else "unknown", rcpt,
                              record.client_ip, authenticated, sender=record.sender)


# Status-like values in a reader's `details` (Postfix defer/bounce logs, Exim msglog,
# Sendmail M lines, BadMail .BDR, DSN fields), joined per recipient into one text.
_STATUS_KEYS = ("status", "diagnostic_code", "diagnostic-code", "reason", "delay_reason",
                "bounce_reason", "bdr", "bdr_text", "error_text", "last_error", "defer_reason")
_RCPT_KEYS = ("final_recipient", "recipient", "address", "original_recipient", "rcpt")
_STATUS_KEY_SET = frozenset(_STATUS_KEYS)


def _status_texts(details: Any, depth: int = 0, recipient: str | None = None) -> Iterator[tuple[str | None, str]]:
    """(recipient, text) for status-like values anywhere in a reader's details (bounded).

    A dict keyed by addresses (`{"a@b": {"status": ...}}`) gives each value its recipient.
    """
    if depth > 4 or not details:
        return
    if isinstance(details, dict):
        present = details.keys() & _STATUS_KEY_SET
        if present:
            own = next((str(details[k]) for k in _RCPT_KEYS if isinstance(details.get(k), str)), None)
            recipient = own or recipient
            texts = [str(details[k]) for k in _STATUS_KEYS
                     if k in present and isinstance(details[k], (str, int))]
            if texts:
                yield recipient, " ".join(dict.fromkeys(texts))
        for key, value in list(details.items())[:500]:
            if isinstance(value, (dict, list)):
                child = str(key) if isinstance(key, str) and "@" in key else recipient
                yield from _status_texts(value, depth + 1, child)
    elif isinstance(details, list):
        for item in details[:500]:
            if isinstance(item, (dict, list)):
                yield from _status_texts(item, depth + 1, recipient)


def _is_dsn(record: QueuedMessage) -> bool:
    content_type = (record.header("Content-Type") or "").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return True
    return record.sender == "" and bool(DSN_SUBJECT.search(record.subject or ""))


def _dsn_observations(record: QueuedMessage, raw: bytes, dsn_module: Any) -> Iterator[Observation]:
    parsed = dsn_module.parse_dsn(raw)
    if parsed is None:
        return
    reporting = getattr(parsed, "reporting_mta", None)
    for rcpt in getattr(parsed, "recipients", []) or []:
        texts = [getattr(rcpt, "diagnostic_code", None), getattr(rcpt, "status", None)]
        text = " ".join(str(t) for t in texts if t)
        info = parse_status(text)
        if info is None:
            continue
        remote = getattr(rcpt, "remote_mta", None)
        if remote and not info.remote_host:
            info.remote_host = str(remote).split(";")[-1].strip() or None
        recipient = getattr(rcpt, "final_recipient", None) or getattr(rcpt, "original_recipient", None)
        if recipient and ";" in str(recipient):
            recipient = str(recipient).split(";", 1)[1].strip()
        origin = "remote" if (remote or info.remote_host) else "unknown"
        where = f"dsn:{record.id}" + (f" (reported by {reporting})" if reporting else "")
        yield Observation(info, where, origin, recipient, sender=record.sender)


def _gather_records(facts: _Facts, records: Iterable[QueuedMessage], ours: frozenset[str],
                    spool: Any) -> None:
    for _ in _observed(facts, records, ours, spool):
        pass


def _observed(facts: _Facts, records: Iterable[QueuedMessage], ours: frozenset[str],
              spool: Any) -> Iterator[QueuedMessage]:
    """Gather each record's evidence into `facts`, then pass the record on (to trace)."""
    try:
        from . import dsn as dsn_module  # the Exchange engineer's RFC 3464 parser
        facts.dsn_parser = hasattr(dsn_module, "parse_dsn")
    except ImportError:
        dsn_module = None
    if not facts.dsn_parser:
        facts.notes.append("queuetool.dsn not available: DSN bodies in the queue were not parsed")
    for record in records:
        _observe_record(facts, record, ours, spool, dsn_module)
        yield record


def _observe_record(facts: _Facts, record: QueuedMessage, ours: frozenset[str], spool: Any,
                    dsn_module: Any) -> None:
    facts.records += 1
    facts.queues[record.queue or "?"] += 1
    if record.error:
        facts.unreadable += 1
    if record.verdict is not None:
        facts.scored += 1
    flagged = record.verdict in ("spam", "relay")
    if flagged:
        facts.flagged += 1
        if len(facts.flagged_examples) < EXAMPLES:
            facts.flagged_examples.append(record.id)
    domains = {d for d in (domain_of(r) for r in record.recipients) if d}
    outside = {d for d in domains if not _is_ours(d, ours)} if ours else domains
    for domain in outside:
        facts.outside_domains.add(domain)
        if record.arrival and (domain not in facts.first_seen_domain
                               or record.arrival < facts.first_seen_domain[domain]):
            facts.first_seen_domain[domain] = record.arrival
    info = parse_status(record.status) if record.status else None
    waiting = (record.queue or "").lower() in WAITING_QUEUES or (info is not None and info.klass == "4")
    if waiting and record.sender is not None:
        arrival = record.arrival
        minute = arrival[:16] if arrival else None       # per minute, for qshape's age buckets
        if arrival and (facts.newest_arrival is None or arrival > facts.newest_arrival):
            facts.newest_arrival = arrival
        status_text = _clip(record.status, 120) if record.status else None
        for domain in domains or ("(no recipient)",):
            slot = facts.waiting.get(domain)
            if slot is None:
                slot = facts.waiting[domain] = [0, None, [], collections.Counter(), collections.Counter()]
            slot[0] += 1
            if minute:
                slot[4][minute] += 1
                if slot[1] is None or arrival < slot[1]:
                    slot[1] = arrival
            if len(slot[2]) < EXAMPLES:
                slot[2].append(record.id)
            if status_text:
                slot[3][status_text] += 1
    if record.auth_user:
        account = facts.accounts.setdefault(record.auth_user, _Account())
        _count(account, record, outside, flagged)
    elif (ours and outside and record.client_ip and not _is_internal_ip(record.client_ip)
          and not _is_ours(domain_of(record.sender), ours) and record.sender != ""
          and not (domains - outside) and not _addressed_to_us(record, ours)):
        relay = facts.open_relay.setdefault(record.client_ip, _Account())
        _count(relay, record, outside, flagged)
    own = list(_record_observations(record))
    facts.observations.extend(own)
    if own:
        facts.ids_with_status.add(record.id)
    if (dsn_module is not None and facts.dsn_parser and spool is not None
            and facts.dsn_read < DSN_READ_LIMIT and _is_dsn(record)):
        facts.dsn_read += 1
        try:
            raw = _message_bytes(spool, record)
            # the reader may already have given this NDR's statuses (BadMail .BDR/.BAD)
            known = {(o.status.code, (o.recipient or "").lower()) for o in own}
            facts.observations.extend(
                o for o in _dsn_observations(record, raw, dsn_module)
                if (o.status.code, (o.recipient or "").lower()) not in known
                and not (o.status.code in {k[0] for k in known} and not o.recipient))
        except Exception as exc:  # noqa: BLE001 - one bad DSN must not stop the walk
            facts.notes.append(f"DSN {record.id} not parsed: {type(exc).__name__}: {_clip(exc, 100)}")


def _addressed_to_us(record: QueuedMessage, ours: frozenset[str]) -> bool:
    """Mail the client sent to one of our addresses (delivered here, or forwarded by an
    alias: the original recipient is ours) is not relaying, whatever it expanded to."""
    originals = record.details.get("original_recipients") if isinstance(record.details, dict) else None
    addresses = list(record.done_recipients)
    if isinstance(originals, dict):
        addresses += [str(v) for v in originals.values()]
    elif isinstance(originals, list):
        addresses += [str(v) for v in originals]
    return any(_is_ours(domain_of(a), ours) for a in addresses)


def _message_bytes(spool: Any, record: QueuedMessage) -> bytes:
    """The record's message bytes straight from its unit (Spool.get_bytes would list the
    whole spool to find the key: quadratic over thousands of DSNs)."""
    from .model import QueueUnit

    spools = getattr(spool, "spools", None) or [spool]
    owner = next((s for s in spools if s.label == record.spool), None)
    if owner is None or not record.files:
        return spool.get_bytes(record.id)
    unit = QueueUnit(record.id, record.queue, tuple(record.files))
    return owner.reader.read_message_bytes(owner.root, unit)


def _count(account: _Account, record: QueuedMessage, outside: set, flagged: bool) -> None:
    account.messages += 1
    account.flagged += flagged
    account.scored += record.verdict is not None
    account.domains.update(outside)
    if record.client_ip:
        account.clients.add(record.client_ip)
    if len(account.examples) < EXAMPLES:
        account.examples.append(record.id)


_HELP_CENTER = re.compile(r"\s*For more information, see Help and Support Center.*$", re.I | re.S)


def _event_text_key(message: str) -> str:
    """An event's text without the boilerplate some export formats append (for dedup)."""
    return " ".join(_HELP_CENTER.sub("", message).split())[:120].lower()


def _events_from_logset(logset: Any) -> Iterator[EventEntry]:
    for event in getattr(logset, "events", []) or []:
        message = getattr(event, "message", "") or " ".join(getattr(event, "strings", []) or [])
        where = f"{getattr(event, 'path', '')}:{getattr(event, 'line', '') or ''}".strip(":")
        yield EventEntry(getattr(event, "event_id", None), str(message), where or "event log",
                         getattr(event, "provider", None), getattr(event, "time", None),
                         [str(v) for v in getattr(event, "strings", []) or []])


def _observations_from_events(events: Iterable[EventEntry]) -> Iterator[Observation]:
    """Event 7004 quotes the remote host's reply: that is an NDR cause seen from our side."""
    for event in events:
        if event.event_id != 7004:
            continue
        match = _EVENT_7004.search(event.message)
        text = match.group(3) if match else event.message
        info = parse_status(text)
        if info is None:
            continue
        if match:
            info.remote_host = match.group(1).strip()
        vs = _VIRTUAL_SERVER.search(event.message)
        full = re.search(r"full command sent was\s+\"?([^\"]*)", event.message, re.I)
        command = (full.group(1) if full else match.group(2) if match else "").strip().upper()
        # only a RCPT command names a recipient (MAIL FROM names the sender)
        rcpt = _ADDRESS.search(full.group(1) if full else text) if command.startswith("RCPT") else None
        yield Observation(info, f"event 7004 {event.where}", "remote",
                          rcpt.group(1) if rcpt else None,
                          virtual_server=(vs.group(1) or vs.group(2)) if vs else None)


def _line_observation(line: str, where: str, fmt: str | None, w3c: list[str] | None,
                      w3c_session: dict[str, dict[str, Any]] | None = None) -> Observation | None:
    """An SMTP reply in one mail/protocol log line, with who gave it (bounded regexes)."""
    if w3c:
        return _w3c_observation(line, where, w3c, w3c_session if w3c_session is not None else {})
    low = line.lower()
    local = ("reject:" in low or "rejected rcpt" in low or "reject=" in low
             or "relaying denied" in low and "stat=" not in low)
    # Exim writes the remote reply twice (an "SMTP error from remote" line, then the "=="
    # or "**" delivery line): only the delivery line counts.
    remote = ("status=" in low or " said:" in low or "stat=" in low or " ** " in line or " == " in line)
    if not (local or remote):
        return None
    info = parse_status(line)
    if info is None or info.klass == "2":
        return None
    client = _LOG_CLIENT.search(line)
    to = _LOG_TO.search(line)
    recipient = next((g for g in to.groups() if g), None) if to else None
    authenticated = True if re.search(r"sasl_username=|\bA=\w+:|authid=", line) else None
    origin = "local" if local else "remote"
    return Observation(info, where, origin, recipient,
                       client.group(2) if (client and origin == "local") else None, authenticated)


def _w3c_observation(line: str, where: str, fields: list[str],
                     session: dict[str, dict[str, Any]]) -> Observation | None:
    """IIS SMTP W3C line: our server's reply status to a client command (no reply text).

    `session` carries, per client address, whether its current session passed AUTH
    (235) and its MAIL FROM, so a later relay refusal can be told apart (KB 895853
    scenario 1) and attributed to a sender (scenario 6).
    """
    values = line.split(" ")
    if len(values) != len(fields):
        return None
    row = dict(zip(fields, values))
    status = row.get("sc-status", "")
    method = row.get("cs-method", "").upper()
    client = row.get("c-ip", "")
    state = session.setdefault(client, {"auth": False, "sender": None})
    if method in ("HELO", "EHLO", "QUIT"):
        state.update(auth=False, sender=None)
    elif method == "AUTH" and status == "235":
        state["auth"] = True
    elif method == "MAIL":
        found = _ADDRESS.search(row.get("cs-uri-query", "").replace("+", " "))
        state["sender"] = found.group(1) if found else None
    if not (status.isdigit() and status[:1] in "45") or method in ("QUIT",):
        return None
    query = row.get("cs-uri-query", "").replace("+", " ").strip()
    text = f"{status} reply to {method} {query}".strip()
    info = parse_status(text)
    if info is None:
        return None
    info.text = _clip(f"{text} | {line}", 300)
    user = row.get("cs-username", "")
    outbound = user.startswith("Outbound")
    address = _ADDRESS.search(query)
    vs = _VIRTUAL_SERVER.search(row.get("s-sitename", ""))
    return Observation(info, where, "remote" if outbound else "local",
                       address.group(1) if (address and method == "RCPT") else None,
                       None if outbound else client, None if outbound else state["auth"],
                       virtual_server=(vs.group(1) or vs.group(2)) if vs else None,
                       sender=None if outbound else state["sender"])


def _gather_logs(facts: _Facts, paths: list[Path]) -> Any:
    """Read the logs once: events and reply lines into `facts`; the LogSet for trace."""
    if not paths:
        return None
    from . import logs as logs_pkg

    logset = logs_pkg.read_logs(paths)
    for stats in logset.files:
        facts.log_files.append({"path": stats.path, "format": stats.format, "lines": stats.lines,
                                "junk": stats.junk, "error": stats.error})
    seen: set[tuple[Any, Any, str]] = set()
    for event in _events_from_logset(logset):
        # the same log exported twice (CSV and text) must not count twice
        key = (event.event_id, event.time, _event_text_key(event.message))
        if event.time is not None and key in seen:
            facts.duplicate_events += 1
            continue
        seen.add(key)
        facts.events.append(event)
    if "windows-events" not in _log_readers(logs_pkg):
        facts.notes.append("queuetool.logs.windows_events not available: event log exports were not read")
    return logset


def _gather_log_replies(facts: _Facts, logset: Any) -> None:
    """SMTP replies in the mail/protocol logs (after the records: queued ids are skipped)."""
    if logset is None:
        return
    from . import logs as logs_pkg

    for stats in logset.files:
        if stats.format in ("windows-events", "exchange-tracking"):
            continue
        _scan_log_lines(facts, Path(stats.path), stats.format, logs_pkg)


def _log_readers(logs_pkg: Any) -> set[str]:
    try:
        return set(logs_pkg.available_log_readers())
    except Exception:  # noqa: BLE001 - a broken reader module must not stop diagnose
        return set()


def _scan_log_lines(facts: _Facts, path: Path, fmt: str | None, logs_pkg: Any) -> None:
    w3c: list[str] | None = None
    w3c_session: dict[str, dict[str, Any]] = {}
    exchange: list[str] | None = None
    exchange_send = False
    exchange_session: dict[str, dict[str, Any]] = {}
    for lineno, line in logs_pkg.iter_lines(path):
        if lineno > LOG_LINE_SCAN_LIMIT:
            facts.notes.append(f"{path}: only the first {LOG_LINE_SCAN_LIMIT} lines were scanned")
            break
        if line.startswith("#Log-type:"):
            exchange_send = "send" in line.lower()
            continue
        if line.startswith(_W3C_FIELDS):
            names = line[len(_W3C_FIELDS):].strip()
            if "," in names and "date-time" in names:   # Exchange 2007+ protocol log (CSV)
                exchange, w3c = [n.strip() for n in names.split(",")], None
            else:
                w3c, exchange = names.split(), None
            continue
        if line.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        if exchange:
            observation = _exchange_protocol_observation(line, where, exchange, exchange_send,
                                                         exchange_session)
        else:
            if w3c:
                values = line.split(" ")
                row = dict(zip(w3c, values)) if len(values) == len(w3c) else {}
                vs = _VIRTUAL_SERVER.search(row.get("s-sitename", ""))
                if vs:
                    facts.virtual_servers.add(vs.group(1) or vs.group(2))
            observation = _line_observation(line, where, fmt, w3c, w3c_session)
            if observation is not None and _mentions_queued(line, facts.ids_with_status):
                continue   # the spool holds this message's current status; the log its history
            if observation is not None and observation.recipient and not w3c:
                # a mail log repeats a deferral at every retry: one per recipient, code and client
                key = (observation.origin, observation.client_ip, observation.recipient.lower(),
                       observation.status.code)
                if key in facts.log_repeats:
                    continue
                if len(facts.log_repeats) < LOG_REPEAT_KEYS:
                    facts.log_repeats.add(key)
        if observation is not None:
            facts.observations.add(observation)


def _mentions_queued(line: str, queued_ids: set[str]) -> bool:
    """The log line is about a message still in the spool (its queue id is a token)."""
    if not queued_ids:
        return False
    for token in line.split()[:8]:
        if token.rstrip(":,") in queued_ids:
            return True
    return False


_SESSION_LIMIT = 10_000   # open protocol-log sessions remembered at once


def _exchange_protocol_observation(line: str, where: str, fields: list[str], send_log: bool,
                                   sessions: dict[str, dict[str, Any]]) -> Observation | None:
    """Exchange 2007+ SmtpReceive/SmtpSend protocol log row: a 4xx/5xx reply, with the
    session's AUTH state, MAIL FROM and last RCPT (rows of one session share session-id)."""
    try:
        values = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None
    row = dict(zip(fields, values))
    session_id = row.get("session-id", "")
    event = row.get("event", "")
    data = row.get("data", "")
    if len(sessions) > _SESSION_LIMIT and session_id not in sessions:
        sessions.clear()
    state = sessions.setdefault(session_id, {"auth": False, "sender": None, "rcpt": None})
    if event == "-":
        sessions.pop(session_id, None)
        return None
    ours_speaking = ">" if not send_log else "<"   # Receive: we reply (>); Send: they reply (<)
    theirs = "<" if not send_log else ">"
    if event == theirs or (send_log and event == ">"):
        upper = data.upper()
        if upper.startswith("MAIL FROM:"):
            found = _ADDRESS.search(data)
            state["sender"] = found.group(1) if found else None
        elif upper.startswith("RCPT TO:"):
            found = _ADDRESS.search(data)
            state["rcpt"] = found.group(1) if found else None
    if event != ours_speaking:
        return None
    if data.startswith("235"):
        state["auth"] = True
        return None
    if not data[:1] in ("4", "5"):
        return None
    info = parse_status(data)
    if info is None:
        return None
    remote = row.get("remote-endpoint", "").rsplit(":", 1)[0].strip("[]") or None
    if send_log:
        info.remote_host = info.remote_host or remote
        return Observation(info, where, "remote", state["rcpt"], sender=state["sender"])
    return Observation(info, where, "local", state["rcpt"], remote, state["auth"], sender=state["sender"])


# ------------------------------------------------------------------ the findings


def _examples(observations: list[Observation]) -> list[str]:
    return [f"{o.where}: {_clip(o.status.text, 160)}" for o in observations[:EXAMPLES]]


def _status_findings(facts: _Facts) -> list[Finding]:
    """One finding per status code, grouped by destination domain and remote host."""
    findings = []
    groups = [(code, g) for code, g in facts.observations.groups.items() if g.klass != "2"]
    for code, group in sorted(groups, key=lambda item: (-item[1].count, item[0])):
        domains, hosts, origins = group.domains, group.hosts, group.origins
        klass = group.klass
        known = describe_code(code)
        unknown = "not in RFC 3463" in known or "not in RFC 5321" in known or "not in queuetool" in known
        severity = "medium" if klass == "5" else "low"
        if code in ("5.0.0", "5.7.1", "5.7.3"):
            severity = "high"
        findings.append(Finding(
            id=f"status-{code}",
            severity=severity,
            title=f"{group.count} delivery status(es) {code}: {_clip(known, 90)}",
            evidence={"count": group.count, "code": code, "meaning": known, "known_code": not unknown,
                      "by_destination_domain": _top(domains), "by_remote_host": _top(hosts),
                      "by_client": _top(group.clients), "origin": dict(origins),
                      "examples": _examples(group.examples)},
            cause=("A status code queuetool's tables do not know; its class and subject digits say "
                   "what kind of failure it is." if unknown else known),
            confirm=["Read the example lines in full: the text after the code is the remote "
                     "server's own explanation.",
                     "Check whether one destination or remote host dominates (see the grouping)."],
            remedy=["Act on the dominant destination/host first; see the KB 895853 scenario and "
                    "block-list findings for 5.7.x codes."],
            references=["RFC 3463", "RFC 5321 section 4.2", "RFC 3464"]
            + (["KB 895853"] if code in ("5.0.0", "5.7.1", "5.7.3") else []),
        ))
    return findings


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _blocklist_findings(facts: _Facts) -> list[Finding]:
    groups: dict[str, tuple[Any, list[Observation]]] = {}
    for obs in facts.observations.kept:
        if obs.status.klass not in ("4", "5"):
            continue
        hit = find_blocklist(obs.status.text)
        if hit is None:
            continue
        groups.setdefault(hit.name, (hit, []))[1].append(obs)
    findings = []
    for name, (hit, group) in sorted(groups.items()):
        domains = collections.Counter(o.domain or "(unknown)" for o in group)
        findings.append(Finding(
            id=f"blocklist-{_slug(name)}",
            severity="critical" if hit.operator != "unknown" else "high",
            title=f"Mail refused because this server is listed on {name} ({len(group)} rejection(s))",
            evidence={"count": len(group), "listing": hit.to_dict(),
                      "by_destination_domain": _top(domains),
                      "codes": dict(collections.Counter(o.status.code for o in group)),
                      "examples": _examples(group)},
            cause=(f"Receivers check {name} ({hit.operator}) and refuse mail from listed addresses; "
                   "a server that relayed spam (open relay or compromised account) gets listed."),
            confirm=[f"Look the server's public IP up at {hit.lookup}.",
                     "Compare the listing date with the start of the spam run in the queue."],
            remedy=list(hit.delisting),
            references=["KB 895853 (block lists after relay abuse)", "RFC 5782 (DNS block lists)"],
        ))
    return findings


QSHAPE_BUCKETS = (5, 10, 20, 40, 80, 160, 320, 640, 1280)   # qshape's default geometric minutes


def _qshape_buckets(minutes: collections.Counter, newest: str | None) -> dict[str, int]:
    """Messages per age bucket like qshape (`0-5`, `5-10`, ... `1280+` minutes), ages
    measured from the newest arrival in the spool: a copied spool has no 'now'."""
    import datetime as _dt

    out = {f"{lo}-{hi}": 0 for lo, hi in zip((0,) + QSHAPE_BUCKETS, QSHAPE_BUCKETS)}
    out[f"{QSHAPE_BUCKETS[-1]}+"] = 0
    if not newest:
        return out
    try:
        ref = _dt.datetime.fromisoformat(newest[:16])
    except ValueError:
        return out
    for minute, count in minutes.items():
        try:
            age = (ref - _dt.datetime.fromisoformat(minute)).total_seconds() / 60
        except (ValueError, TypeError):
            continue
        for lo, hi in zip((0,) + QSHAPE_BUCKETS, QSHAPE_BUCKETS):
            if age < hi:
                out[f"{lo}-{hi}"] += count
                break
        else:
            out[f"{QSHAPE_BUCKETS[-1]}+"] += count
    return out


def _stuck_findings(facts: _Facts) -> list[Finding]:
    rows = []
    for domain, (count, oldest, ids, statuses, minutes) in facts.waiting.items():
        if count >= STUCK_MIN_MESSAGES:
            last = statuses.most_common(1)[0][0] if statuses else None
            rows.append({"domain": domain, "messages": count, "oldest": oldest, "examples": ids,
                         "top_status": last, "age_minutes": _qshape_buckets(minutes, facts.newest_arrival)})
    if not rows:
        return []
    rows.sort(key=lambda r: (-r["messages"], r["domain"]))
    total = sum(r["messages"] for r in rows)
    return [Finding(
        id="stuck-destinations",
        severity="high" if total >= 50 else "medium",
        title=f"Deferred mail piling up for {len(rows)} destination(s) ({total} message(s))",
        evidence={"count": total, "threshold": STUCK_MIN_MESSAGES, "age_reference": facts.newest_arrival,
                  "destinations": rows[:GROUP_ROWS * 3]},
        cause=("Messages wait in the queue for these destinations: the destination refuses or "
               "cannot be reached (see top_status), or the queue is full of relayed spam to "
               "domains that refuse it."),
        confirm=["Look at top_status per destination: 4.4.x = unreachable/DNS, 4.7.x/5.7.x = "
                 "policy or block list.",
                 "qshape-style view: `queuetool summary SPOOL --by domain`."],
        remedy=["If the waiting mail is spam: quarantine it (`queuetool quarantine`) so the server "
                "stops retrying and re-listing itself.",
                "If legitimate: fix DNS/routing to the destination, or ask the destination why it "
                "defers (greylisting, rate limits, block lists)."],
        references=["RFC 3463 (X.4.x network and routing status)", "Postfix qshape(1)"],
    )]


def _event_findings(facts: _Facts) -> list[Finding]:
    by_id: dict[Any, list[EventEntry]] = collections.defaultdict(list)
    for event in facts.events:
        by_id[event.event_id].append(event)
    findings = []
    for event_id, group in sorted(by_id.items(), key=lambda item: (str(item[0]))):
        severity, title = KNOWN_EVENTS.get(event_id, ("info", "Event not in queuetool's table"))
        providers = collections.Counter(e.provider or "?" for e in group)
        evidence: dict[str, Any] = {
            "count": len(group), "event_id": event_id, "known_event": event_id in KNOWN_EVENTS,
            "providers": dict(providers),
            "examples": [f"{e.where}: {_clip(e.message, 160)}" for e in group[:EXAMPLES]],
        }
        if event_id == 1708:
            users = collections.Counter(_auth_user_1708(e) or "?" for e in group)
            evidence["accounts"] = _top(users)
        findings.append(Finding(
            id=f"event-{event_id if event_id is not None else 'unknown'}",
            severity=severity,
            title=f"Event {event_id}: {title} ({len(group)}x)",
            evidence=evidence,
            cause=title if event_id in KNOWN_EVENTS else
            "An event id queuetool does not interpret; shown so nothing in the export is dropped.",
            confirm=["Open the example events in Event Viewer for the full description."],
            remedy=["See the KB 895853 findings that cite this event id."] if event_id in KNOWN_EVENTS
            else ["Look the event id up for its source; it may be unrelated to mail."],
            references=["KB 895853"] if event_id in KNOWN_EVENTS else [],
        ))
    return findings


def _auth_user_1708(event: EventEntry) -> str | None:
    """The account an Event 1708 names, via the trace engineer's windows_events reader."""
    try:
        from .logs import LogEvent
        from .logs.windows_events import auth_1708
    except ImportError:
        return None
    found = auth_1708(LogEvent(source="diagnose", event_id=event.event_id, message=event.message,
                               strings=list(event.strings)))
    return found[2] if found else None


# ----- KB 895853: open relay vs compromised account


def _trace_accounts(source: Any, log_paths: list[Path], settings: Any, facts: _Facts) -> list[Any]:
    try:
        from . import trace as trace_module
    except ImportError:
        facts.notes.append("queuetool.trace not available: account verdicts come from spool data only")
        return []
    if source is None or not hasattr(trace_module, "trace"):
        return []
    try:
        result = trace_module.trace(source, logs=log_paths, settings=settings, logs_below=False)
    except TypeError:
        result = trace_module.trace(source, logs=log_paths)
    except Exception as exc:  # noqa: BLE001 - trace failing must not stop diagnose
        facts.notes.append(f"trace failed: {type(exc).__name__}: {_clip(exc, 120)}")
        return []
    return list(getattr(result, "accounts", []) or [])


def _trace_in_the_same_pass(facts: _Facts, records: Iterable[QueuedMessage], ours: frozenset[str],
                            spool: Any, settings: Any, logset: Any) -> list[Any] | None:
    """Trace's account judgement over the records diagnose reads anyway (one spool pass,
    not two): trace.enrich_records -> collect -> judge, ranked like trace.trace.
    None when trace's pieces are not there (the caller then runs trace.trace)."""
    try:
        from . import trace as trace_module
    except ImportError:
        facts.notes.append("queuetool.trace not available: account verdicts come from spool data only")
        return []
    needed = ("LogIndex", "enrich_records", "collect", "judge", "VERDICT_RANK")
    if settings is None or not all(hasattr(trace_module, name) for name in needed):
        return None
    index = trace_module.LogIndex.build(logset) if logset is not None else None
    observed = _observed(facts, trace_module.enrich_records(records, index), ours, spool)
    try:
        entries, _total, _unattributed = trace_module.collect(observed, settings, index)
        for entry in entries.values():
            trace_module.judge(entry)
    except Exception as exc:  # noqa: BLE001 - trace failing must not stop diagnose
        facts.notes.append(f"trace failed: {type(exc).__name__}: {_clip(exc, 120)}")
        for _ in observed:    # finish diagnose's own pass over the records
            pass
        return []
    for _ in observed:        # in case collect stopped early
        pass
    rank = trace_module.VERDICT_RANK
    return sorted(entries.values(), key=lambda e: (rank.get(e.verdict, 9), e.kind != "account",
                                                   -e.score, -e.messages, e.account or e.client or ""))


def _inferred_settings(spool: Any, settings: Any, mta: str | None, notes: list[str]) -> Any:
    """No domains given: infer them from the spool like scan/trace do, and say so."""
    if settings is None:
        try:
            from .config import Settings
        except ImportError:
            return settings
        settings = Settings()
    if _our_domains(settings) or isinstance(settings, dict):
        return settings
    try:
        from .analysis import infer_settings
    except ImportError:
        return settings
    try:
        inferred = infer_settings(spool, settings, mta=mta)
    except Exception as exc:  # noqa: BLE001 - inference is a convenience
        notes.append(f"domain inference failed: {type(exc).__name__}: {_clip(exc, 100)}")
        return settings
    if _our_domains(inferred):
        evidence = getattr(inferred, "inference_evidence", "")
        notes.append(f"no local domains given; inferred {', '.join(sorted(_our_domains(inferred)))}"
                     + (f" ({evidence})" if evidence else "") + ": findings that rest on them say so")
    return inferred


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def _size(value: Any) -> int | None:
    if value is None:
        return None
    return value if isinstance(value, int) else len(value)


def _trace_entry(entry: Any) -> dict[str, Any]:
    return {"account": _get(entry, "account"), "client": _get(entry, "client"),
            "verdict": _get(entry, "verdict"), "messages": _get(entry, "messages"),
            "flagged": _get(entry, "flagged"),
            "recipient_domains": _size(_get(entry, "outside_domains") or _get(entry, "recipient_domains")),
            "client_ips": sorted(_get(entry, "client_ips", []) or [])[:EXAMPLES],
            "evidence": list(_get(entry, "evidence", []) or [])[:6], "source": "trace"}


def _relay_findings(facts: _Facts, trace_accounts: list[Any], ours: frozenset[str]) -> list[Finding]:
    """Open relay vs compromised account (vs local script), from trace when it ran, else the spool."""
    findings = []
    compromised: list[dict[str, Any]] = []
    relays: list[dict[str, Any]] = []
    local: list[dict[str, Any]] = []
    for entry in trace_accounts:
        kind = _get(entry, "kind", "account")
        if _get(entry, "verdict") not in ("compromised", "suspicious"):
            continue
        target = {"account": compromised, "relay": relays, "local": local}.get(kind)
        if target is not None:
            target.append(_trace_entry(entry))
    if not trace_accounts:
        for name, acc in sorted(facts.accounts.items()):
            if len(acc.domains) >= FANOUT_DOMAINS and (acc.flagged or acc.scored == 0):
                compromised.append({"account": name, "verdict": "suspicious", "messages": acc.messages,
                                    "flagged": acc.flagged, "recipient_domains": len(acc.domains),
                                    "client_ips": sorted(acc.clients)[:EXAMPLES],
                                    "examples": acc.examples, "source": "spool auth data"})
        for ip, acc in sorted(facts.open_relay.items()):
            relays.append({"client": ip, "messages": acc.messages, "recipient_domains": len(acc.domains),
                           "flagged": acc.flagged, "examples": acc.examples, "source": "spool"})
    if compromised:
        confirmed = [c for c in compromised if c["verdict"] == "compromised"]
        named = confirmed or compromised
        findings.append(Finding(
            id="compromised-account",
            severity="critical" if confirmed else "high",
            title=("Authenticated relay through " + ", ".join(str(c["account"]) for c in named[:3])
                   + (" (trace verdict: compromised)" if confirmed else " (suspected)")),
            evidence={"count": len(named), "accounts": named,
                      "also_suspicious": [c for c in compromised if c not in named][:GROUP_ROWS]},
            cause=("Spam is relayed after a successful SMTP AUTH: the account's password is known to "
                   "the spammer (KB 895853: 'a account on the Exchange computer is used')."),
            confirm=["Exchange 2000/2003: set Diagnostics Logging MSExchangeTransport > SMTP Protocol "
                     "(and Authentication) to Maximum; Event 1708 names the account and client.",
                     "Check the account's logons (failed-then-successful AUTH from odd addresses).",
                     "`queuetool trace SPOOL --log ...` for the per-account evidence."],
            remedy=["Reset the password or disable the account; delete unused/test accounts; disable Guest.",
                    "Clear 'Allow all computers which successfully authenticate to relay' unless "
                    "POP3/IMAP users need it (RelayForAuth).",
                    "Restart the SMTP virtual server so cached sessions end; quarantine the spam.",
                    "Then request delisting (see block-list findings)."],
            references=["KB 895853", "KB 324958", "KB 304897", "KB 867457"],
        ))
    if relays:
        findings.append(Finding(
            id="open-relay",
            severity="critical",
            title=f"Unauthenticated outside-to-outside relay from {len(relays)} client(s)",
            evidence={"count": sum(int(r.get("messages") or 0) for r in relays), "clients": relays[:GROUP_ROWS],
                      "our_domains": sorted(ours)},
            cause=("Clients that did not authenticate had mail from outside senders accepted for "
                   "outside recipients: the relay restrictions let them (an open relay, or relay "
                   "networks/IP list that include them)."),
            confirm=["Telnet to port 25 from an outside address, MAIL FROM an outside address, RCPT TO "
                     "an outside address: a 250 reply confirms the open relay (KB 324958).",
                     "Exchange: SMTP virtual server > Access > Relay: which computers are listed; "
                     "Postfix mynetworks/smtpd_relay_restrictions; Exim relay_from_hosts; "
                     "Sendmail access 'RELAY' entries."],
            remedy=["Relay: 'Only the list below' with an empty list (keep anonymous access for "
                    "inbound mail, never anonymous relay); remove the listed client networks.",
                    "No SMTP connector with address space * that allows relaying.",
                    "Quarantine the relayed mail, then request delisting."],
            references=["KB 895853", "KB 324958", "KB 313395", "KB 319356", "KB 310356"],
        ))
    if local:
        findings.append(Finding(
            id="local-submission",
            severity="high",
            title=f"Mail to outside domains submitted on the server itself without a login ({len(local)} source(s))",
            evidence={"count": sum(int(e.get("messages") or 0) for e in local), "sources": local},
            cause=("Neither relay case of KB 895853: a local program (typically a web script via the "
                   "sendmail command) injects the mail, so no SMTP login or client address exists."),
            confirm=["Find the submitting user/script: Postfix pickup uid=, Exim U=/ident, Sendmail "
                     "ctladdr, X-PHP-Originating-Script headers; the web server's access log at those times."],
            remedy=["Disable or fix the script (contact forms, outdated CMS plugins), rotate the site's "
                    "credentials, quarantine the queued mail."],
            references=["KB 895853 (symptoms)"],
        ))
    return findings


def _symptom_finding(facts: _Facts, ours: frozenset[str], relay_ids: list[str]) -> Finding | None:
    codes = {code: facts.observations.count(code) for code in ("5.0.0", "5.7.1")}
    events = collections.Counter(e.event_id for e in facts.events)
    symptoms = {}
    if facts.flagged:
        symptoms["spam_in_queues"] = {"messages": facts.flagged, "examples": facts.flagged_examples}
    if len(facts.outside_domains) >= FANOUT_DOMAINS * 2:
        series = collections.Counter(v[:13] for v in facts.first_seen_domain.values())
        symptoms["many_destination_domains"] = {
            "outside_domains": len(facts.outside_domains),
            "new_domains_per_hour": [{"hour": k, "new": n} for k, n in sorted(series.items())][-24:],
            "local_domains_known": bool(ours)}
    if codes.get("5.0.0") or codes.get("5.7.1"):
        symptoms["ndr_5.0.0_5.7.1"] = {"5.0.0": codes.get("5.0.0", 0), "5.7.1": codes.get("5.7.1", 0)}
    if events.get(7004) or events.get(4001):
        symptoms["events_7004_4001"] = {"7004": events.get(7004, 0), "4001": events.get(4001, 0)}
    if not symptoms or not (set(symptoms) & {"spam_in_queues", "many_destination_domains"} or relay_ids):
        return None
    which = (" -> see " + ", ".join(relay_ids)) if relay_ids else \
        " -> neither an open relay nor a compromised account is shown by the evidence yet"
    return Finding(
        id="relay-abuse-symptoms",
        severity="high",
        title=f"KB 895853 relay-abuse symptoms present ({len(symptoms)} of 5){which}",
        evidence={"count": len(symptoms), "symptoms": symptoms, "conclusions": relay_ids},
        cause=("KB 895853: mail to a growing number of domains, spam in the queues, NDRs 5.0.0/5.7.1 "
               "and events 7004/4001 mean the server relays spam: either it is an open relay or an "
               "account is used for authenticated relay."),
        confirm=["Open relay: test relaying from an outside address without AUTH (KB 324958).",
                 "Compromised account: Event 1708 / SASL log lines name the account; "
                 "`queuetool trace SPOOL --log ...`.",
                 "An outside domain complaining about spam from this server is the fifth symptom "
                 "(not visible in the queue)."],
        remedy=["Fix the cause named by the open-relay/compromised-account finding, quarantine the "
                "spam, then request delisting."],
        references=["KB 895853", "KB 324958"],
    )


# ----- KB 895853: the six 5.7.1/5.7.3 scenarios

_SCENARIO_REFS = {
    1: ["KB 895853 scenario 1", "KB 304897"],
    2: ["KB 895853 scenario 2", "KB 313395"],
    3: ["KB 895853 scenario 3"],
    4: ["KB 895853 scenario 4", "KB 249299", "KB 319065", "KB 321721"],
    5: ["KB 895853 scenario 5", "RFC 4954"],
    6: ["KB 895853 scenario 6"],
}
_SCENARIO_CONFIRM = {
    1: "SMTP virtual server > Access > Relay: 'Allow all computers which successfully authenticate "
       "to relay, regardless of the list above' is cleared (metabase RelayForAuth = 0).",
    2: "SMTP virtual server > Access > Authentication: 'Anonymous access' is cleared.",
    3: "nslookup -q=mx <domain>: the MX host resolves to the IP of the SMTP virtual server that "
       "accepts the organisation's domains (not another virtual server on the same machine).",
    4: "Recipient policies: every SMTP proxy address domain of the refused recipients has a policy "
       "(SMTP:@domain) marked 'This Exchange Organization is responsible for all mail delivery'.",
    5: "Ask the destination's admin whether it requires SMTP AUTH; check the SMTP connector's "
       "outbound security (credentials) for that address space. 5.7.3 may also mean the "
       "destination could not find the recipient.",
    6: "ISA Server 2000: the SMTP server publishing rule points at the ISA server's current "
       "external IP, and the Isactrl service was restarted after the change.",
}
_SCENARIO_REMEDY = {
    1: "Select 'Allow all computers which successfully authenticate to relay' if authenticated "
       "(POP3/IMAP) users must send outside — only once no account is compromised.",
    2: "Select 'Anonymous access' on the Internet-facing SMTP virtual server (relay stays "
       "restricted; anonymous access is needed to receive mail from the internet).",
    3: "Point the MX record (and firewall/NAT) at the correct SMTP virtual server's address.",
    4: "Create or fix the recipient policy for the domain and let the Recipient Update Service "
       "stamp the proxy addresses (KB 319065); shared domains need a connector (KB 321721).",
    5: "Configure authentication on the SMTP connector/smarthost for that destination.",
    6: "Update the SMTP publishing rule to the new external IP and restart Isactrl.",
}
_SCENARIO_TITLES = {
    1: "authenticated computers are not allowed to relay",
    2: "anonymous access to the SMTP virtual server is disabled",
    3: "DNS/MX sends incoming connections to the wrong SMTP virtual server",
    4: "no recipient policy matches the recipients' proxy addresses",
    5: "the destination server requires authentication",
    6: "an ISA Server 2000 SMTP publishing rule is stale",
}
_SCENARIO_IDS = {
    1: "kb895853-s1-authenticated-relay-denied",
    2: "kb895853-s2-anonymous-access-disabled",
    3: "kb895853-s3-mx-wrong-virtual-server",
    4: "kb895853-s4-no-recipient-policy",
    5: "kb895853-s5-destination-requires-auth",
    6: "kb895853-s6-isa-publishing-rule",
}


def _scenario_finding(number: int, observations: list[Observation], support: dict[str, Any],
                      severity: str = "high") -> Finding:
    evidence = {"count": len(observations), "support": support, "examples": _examples(observations),
                "codes": dict(collections.Counter(o.status.code for o in observations))}
    return Finding(
        id=_SCENARIO_IDS[number], severity=severity,
        title=f"KB 895853 scenario {number}: {_SCENARIO_TITLES[number]}",
        evidence=evidence,
        cause=(f"The evidence fits scenario {number} of KB 895853 ({_SCENARIO_TITLES[number]}): "
               f"{support.get('why', 'see evidence')}."),
        confirm=[_SCENARIO_CONFIRM[number]], remedy=[_SCENARIO_REMEDY[number]],
        references=_SCENARIO_REFS[number],
    )


def _w3c_rcpt_550(o: Observation) -> bool:
    """IIS SMTP logs only the number: a 550 to RCPT from IIS is 'Unable to relay' unless
    recipient filtering is on (then 5.1.1) — taken as a relay refusal, and said so."""
    return (o.origin == "local" and o.status.basic == 550 and o.status.enhanced is None
            and "reply to RCPT" in o.status.text and bool(o.domain))


def _scenario_findings(facts: _Facts, ours: frozenset[str]) -> list[Finding]:
    findings: list[Finding] = []
    events = collections.Counter(e.event_id for e in facts.events)
    obs = [o for o in facts.observations.kept if o.status.klass in ("4", "5")]
    relay_denied = [o for o in obs if is_relay_denied(o.status.text)
                    or (o.status.code == "5.7.1" and o.origin == "local" and o.domain)
                    or _w3c_rcpt_550(o)]
    local_denied = [o for o in relay_denied if _is_ours(o.domain, ours)]
    outside_denied = [o for o in relay_denied if o not in local_denied]

    # Scenario 1: our server refused to relay for a client that had authenticated.
    s1 = [o for o in outside_denied if o.authenticated and o.origin != "remote"]
    if s1:
        findings.append(_scenario_finding(1, s1, {
            "why": "relay to outside domains refused although the client had authenticated",
            "clients": sorted({o.client_ip for o in s1 if o.client_ip})[:GROUP_ROWS]}, "medium"))
    # Relay refused to unauthenticated outside clients: protection working, not a scenario.
    probes = [o for o in outside_denied if o.origin == "local" and not o.authenticated]
    if probes:
        clients = collections.Counter(o.client_ip or "?" for o in probes)
        findings.append(Finding(
            id="relay-attempts-refused", severity="info",
            title=f"{len(probes)} relay attempt(s) refused from {len(clients)} unauthenticated client(s)",
            evidence={"count": len(probes), "by_client": _top(clients), "examples": _examples(probes)},
            cause="Outside clients tried to relay and were refused: relay restrictions work for them "
                  "(open-relay probes or spam runs).",
            confirm=["Compare with the open-relay finding: accepted relays from other clients mean "
                     "the restriction has exceptions (listed networks)."],
            remedy=["Nothing for these; consider blocking persistent probers at the firewall."],
            references=["KB 895853", "KB 313395"]))
    # Relay refusals for outside recipients not shown to be this server's own answer to an
    # authenticated client: a route or backscatter problem, or scenario 1 if they were ours.
    others = [o for o in outside_denied if o not in s1 and o not in probes]
    if others:
        findings.append(Finding(
            id="relay-refused-outside", severity="medium",
            title=f"{len(others)} 'unable to relay' refusal(s) for outside recipients",
            evidence={"count": len(others), "examples": _examples(others),
                      "by_destination_domain": _top(collections.Counter(o.domain or "?" for o in others)),
                      "by_remote_host": _top(collections.Counter(o.status.remote_host or "(not stated)"
                                                                 for o in others)),
                      "null_sender": sum(1 for o in others if o.sender == "")},
            cause=("A server refused to relay mail for these outside domains: the server this one "
                   "handed the mail to is not the domain's mail exchanger or does not relay for it "
                   "(KB 262354). NDRs to forged senders (null_sender) are backscatter of the spam run."),
            confirm=["Check the route to the refused domains: MX records, SMTP connector smarthost.",
                     "If this server itself gave the refusal to users who had authenticated (its own "
                     "protocol log), it is KB 895853 scenario 1: "
                     + _SCENARIO_CONFIRM[1]],
            remedy=["Fix the route; for backscatter, stop the spam source and quarantine the NDRs."],
            references=["KB 262354", "KB 895853"]))
    # Scenario 2: this server demanded authentication from anonymous senders of inbound mail.
    s2 = [o for o in obs if o.origin == "local" and not o.authenticated and (
        is_auth_required(o.status.text) or o.status.basic == 530)
        and (not o.domain or _is_ours(o.domain, ours) or not ours)]
    if s2:
        findings.append(_scenario_finding(2, s2, {
            "why": "this server answered anonymous clients with 'authentication required' "
                   "(530 / 'Client was not authenticated')",
            "clients": sorted({o.client_ip for o in s2 if o.client_ip})[:GROUP_ROWS]}))
    # Scenario 5: a remote destination demanded authentication (5.7.3 or auth wording).
    s5 = [o for o in obs if o.origin != "local" and not _is_ours(o.domain, ours) and (
        o.status.code == "5.7.3" or (is_auth_required(o.status.text) and o.status.klass == "5"))]
    if s5:
        findings.append(_scenario_finding(5, s5, {
            "why": "remote servers answered 5.7.3 / 'authentication required'",
            "destinations": _top(collections.Counter(o.domain or "?" for o in s5)),
            "remote_hosts": _top(collections.Counter(o.status.remote_host or "?" for o in s5)),
            "alternative": "5.7.3 can also mean the destination could not find the recipient"}, "medium"))
    # Scenarios 3, 4, 6: mail for our own domains refused as relay (+ events 1701/1707/1709/1710).
    family_events = {k: events[k] for k in (1701, 1707, 1709, 1710) if events.get(k)}
    if local_denied or family_events:
        findings.extend(_local_domain_findings(facts, local_denied, family_events, ours))
    # The misleading "does not have permission" wording (KB 262354).
    misleading = [o for o in obs if is_misleading_permission_text(o.status.text)]
    if misleading:
        findings.append(Finding(
            id="misleading-permission-ndr", severity="medium",
            title=f"{len(misleading)} NDR(s) say the sender 'does not have permission': a relay refusal",
            evidence={"count": len(misleading), "examples": _examples(misleading),
                      "by_destination_domain": _top(collections.Counter(o.domain or "?" for o in misleading))},
            cause=("The 5.7.1 NDR text suggests a permissions problem of the sender; the real reason is "
                   "that the receiving server refused to relay for the sending domain (KB 262354)."),
            confirm=["Find which server generated the NDR (Reporting-MTA / the remote host) and check "
                     "whether it is authoritative for the recipient's domain (MX records)."],
            remedy=["Fix the route (MX, connector smarthost, relay permission on the receiving side); "
                    "the sender's mailbox permissions are not the problem."],
            references=["KB 262354", "KB 895853"]))
    return findings


def _scenarios_of_events(events: dict[int, int]) -> list[int]:
    """KB 895853: 1701 with scenarios 3 and 6, 1707 with 4, 1709/1710 with 3, 4 and 6."""
    found: set[int] = set()
    for event_id in events:
        found.update({1701: (3, 6), 1707: (4,), 1709: (3, 4, 6), 1710: (3, 4, 6)}.get(event_id, ()))
    return sorted(found) or [3, 4, 6]


def _local_domain_findings(facts: _Facts, denied: list[Observation], family_events: dict[int, int],
                           ours: frozenset[str]) -> list[Finding]:
    """Scenarios 3/4/6 share symptoms; name the one the evidence singles out, else all three."""
    support: dict[str, Any] = {"events": family_events,
                               "refused_local_domains": _top(collections.Counter(o.domain for o in denied))}
    denying_vs = {o.virtual_server for o in denied if o.virtual_server}
    accepting_vs = facts.virtual_servers - denying_vs
    senders = collections.defaultdict(set)
    for o in denied:
        if o.client_ip:
            senders[o.client_ip].add(domain_of(o.sender) or o.sender or "?")
    # One address carrying every refused inbound message: from many sender domains, or an
    # internal address (inbound internet mail arriving from inside = a proxy in front).
    funnel = sorted(ip for ip, doms in senders.items()
                    if len(senders) == 1 and (len(doms) >= 3 or _is_internal_ip(ip)))
    candidates = []
    if denied and denying_vs and accepting_vs:
        candidates.append((3, {"why": "mail for our domains refused as relay on virtual server(s) "
                                      f"{sorted(denying_vs)} while virtual server(s) {sorted(accepting_vs)} "
                                      "also run here: connections reach the wrong one",
                               "denying_virtual_servers": sorted(denying_vs),
                               "other_virtual_servers": sorted(accepting_vs)}))
    if denied and family_events.get(1707):
        candidates.append((4, {"why": "mail for our domains refused as relay and event 1707 logged "
                                      "(recipient policy / proxy address scenario)",
                               "event_1707": family_events[1707]}))
    if denied and funnel and not (denying_vs and accepting_vs):
        candidates.append((6, {"why": "all refused inbound mail for our domains arrives from one "
                                      "address carrying many unrelated senders (a publishing proxy "
                                      "such as ISA Server in front of this server)",
                               "proxy_addresses": funnel}))
    if len(candidates) == 1:
        number, extra = candidates[0]
        return [_scenario_finding(number, denied, {**support, **extra})]
    names = [n for n, _ in candidates] or _scenarios_of_events(family_events)
    if denied:
        title = ("Mail for this organisation's own domains refused as relay: KB 895853 scenario "
                 + ", ".join(map(str, names)) + " (not yet told apart)")
    else:
        title = ("Events " + ", ".join(map(str, sorted(family_events))) + " logged but no refused mail "
                 "for our domains seen: KB 895853 scenario " + ", ".join(map(str, names)) + " possible")
    return [Finding(
        id="kb895853-local-domain-refused", severity="high" if denied else "medium",
        title=title,
        evidence={"count": len(denied), "support": support, "examples": _examples(denied),
                  "candidates": [{"scenario": n, "title": _SCENARIO_TITLES[n], **e} for n, e in candidates]
                  or [{"scenario": n, "title": _SCENARIO_TITLES[n]} for n in names],
                  "local_domains_known": bool(ours)},
        cause=("5.7.1/5.7.3 relay refusals (or events 1701/1707/1709/1710) for recipients in domains "
               "this server should accept: the receiving SMTP virtual server does not treat the "
               "domain as local."),
        confirm=[f"Scenario {n}: {_SCENARIO_CONFIRM[n]}" for n in names],
        remedy=[f"Scenario {n}: {_SCENARIO_REMEDY[n]}" for n in names],
        references=sorted({r for n in names for r in _SCENARIO_REFS[n]}),
    )]


# ------------------------------------------------------------------ entry point


def _severity_rank(finding: Finding) -> tuple[int, int, str]:
    count = finding.evidence.get("count", 0) if isinstance(finding.evidence, dict) else 0
    rank = SEVERITIES.index(finding.severity) if finding.severity in SEVERITIES else len(SEVERITIES)
    return (rank, -int(count or 0), finding.id)


def diagnose(
    source: Any = None,
    *,
    logs: Iterable[str | Path] = (),
    settings: Any = None,
    records: Iterable[QueuedMessage] | None = None,
    events: Iterable[EventEntry] | None = None,
    mta: str | None = None,
    jobs: int = 1,
    use_trace: bool = True,
    logs_below: bool = True,
    trace_result: Any = None,
) -> DiagnoseResult:
    """Walk KB 895853 (and the generic NDR checks) over a spool and its logs.

    `source` is a spool path/Spool; `records` (already read) and `events` may be given
    instead, e.g. by tests or by a caller that scanned already. `settings` supplies the
    organisation's domains (a config.Settings, or a dict with local_domains ...).
    `logs_below` also reads the logs found inside a server tree (spools.find_logs).
    `trace_result` (a trace.TraceResult already computed) saves running trace again.
    """
    facts = _Facts()
    settings = _as_settings(settings)
    ours = _our_domains(settings)
    log_paths = [Path(p) for p in logs]
    spool = None
    if records is None and source is None:
        raise ValueError("diagnose needs a spool or records")
    if source is not None:
        from . import spools as spools_pkg

        if isinstance(source, (spools_pkg.Spool, spools_pkg.MultiSpool)):
            spool = source
        else:
            spool = spools_pkg.open_spool(source, mta=mta)
            if logs_below:
                from .trace import with_logs_below

                log_paths = with_logs_below(log_paths, source)
    logset = _gather_logs(facts, log_paths)
    if records is None:
        settings = _inferred_settings(spool, settings, mta, facts.notes)
        ours = _our_domains(settings)
        records = _records_of(spool, settings, log_paths, jobs, facts.notes)
    trace_accounts: list[Any] = []
    if trace_result is not None:
        trace_accounts = list(_get(trace_result, "accounts", []) or [])
        _gather_records(facts, records, ours, spool)
    elif use_trace and spool is not None:
        traced = _trace_in_the_same_pass(facts, records, ours, spool, settings, logset)
        if traced is None:   # trace's pieces unavailable: gather, then let trace read the spool itself
            _gather_records(facts, records, ours, spool)
            traced = _trace_accounts(spool, log_paths, settings, facts)
        trace_accounts = traced
    else:
        _gather_records(facts, records, ours, spool)
    _gather_log_replies(facts, logset)
    if events is not None:
        facts.events.extend(events)
    facts.observations.extend(_observations_from_events(facts.events))

    findings: list[Finding] = []
    relay = _relay_findings(facts, trace_accounts, ours)
    findings.extend(relay)
    symptoms = _symptom_finding(facts, ours, [f.id for f in relay])
    if symptoms:
        findings.append(symptoms)
    findings.extend(_scenario_findings(facts, ours))
    findings.extend(_blocklist_findings(facts))
    findings.extend(_stuck_findings(facts))
    findings.extend(_status_findings(facts))
    findings.extend(_event_findings(facts))
    findings.sort(key=_severity_rank)
    if facts.duplicate_events:
        facts.notes.append(f"{facts.duplicate_events} event(s) seen in more than one export were counted once")
    if facts.observations.dropped:
        facts.notes.append(f"{facts.observations.dropped} policy/permanent statuses beyond "
                           f"{_Observations.KEEP_LIMIT} were counted but not kept for the scenario checks")
    if not ours:
        facts.notes.append("no local domains given (--local-domain/--config): findings that need "
                           "'ours vs outside' (open relay, scenarios 3/4/6) are limited")
    return DiagnoseResult(findings, {
        "records": facts.records, "unreadable": facts.unreadable, "scored": facts.scored,
        "queues": dict(facts.queues), "statuses": facts.observations.total, "events": len(facts.events),
        "dsn_parsed": facts.dsn_read, "logs": facts.log_files, "local_domains": sorted(ours),
        "domains_inferred": bool(getattr(settings, "domains_inferred", False)),
        "notes": facts.notes,
    })


def _as_settings(settings: Any) -> Any:
    """A dict of domains becomes config.Settings when that module exists (trace/analyze want it)."""
    if not isinstance(settings, dict):
        return settings
    try:
        from .config import Settings
    except ImportError:
        return settings
    try:
        return Settings(**{key: frozenset(d.lower() for d in settings.get(key, ()))
                           for key in ("local_domains", "relay_domains", "shared_domains")})
    except TypeError:
        return settings


def _records_of(spool: Any, settings: Any, log_paths: list[Path], jobs: int,
                notes: list[str]) -> Iterator[QueuedMessage]:
    """Scored records from analysis.analyze when it exists, else the plain scan (headers kept).

    If the analysis fails part-way, the scan supplies the records it had not yet given.
    """
    try:
        from .analysis import analyze
    except ImportError:
        analyze = None
    seen: set[tuple[str | None, str]] = set()
    if analyze is not None and settings is not None and not isinstance(settings, dict):
        try:
            for record in analyze(spool, settings=settings, logs=log_paths, jobs=jobs, keep_headers=True):
                seen.add((record.spool, record.id))
                yield record
            return
        except Exception as exc:  # noqa: BLE001 - scoring failing must not stop diagnose
            notes.append(f"analysis failed after {len(seen)} record(s) ({type(exc).__name__}: "
                         f"{_clip(exc, 100)}); the rest are unscored scan records")
    from .scan import scan

    for record in scan(spool, jobs=jobs, keep_headers=True):
        if (record.spool, record.id) not in seen:
            yield record


def settings_for(local_domains: Iterable[str] = (), config_path: str | Path | None = None) -> Any:
    """Settings from --local-domain/--config: config.load_settings when present, else a dict."""
    try:
        from .config import load_settings
    except ImportError:
        load_settings = None
    if load_settings is not None:
        return load_settings(config_path, local_domains=list(local_domains))
    if config_path is not None:
        raise ValueError("--config needs queuetool.config, which this installation lacks")
    return {"local_domains": [d.lower() for d in local_domains]}


def render_text(result: DiagnoseResult) -> str:
    """The human view: one block per finding, most severe first, then what was read."""
    lines: list[str] = []
    if not result.findings:
        lines.append("No findings: no NDRs, block-list rejections, stuck destinations, relay "
                     "abuse or known events in what was read.")
    for finding in result.findings:
        lines.append(f"[{finding.severity.upper()}] {finding.id}: {finding.title}")
        evidence = finding.evidence
        lines.append(f"  evidence: {_evidence_line(evidence)}")
        for example in evidence.get("examples", [])[:3]:
            lines.append(f"    e.g. {_clip(example, 110)}")
        lines.append(f"  cause:    {finding.cause}")
        for step in finding.confirm:
            lines.append(f"  confirm:  {step}")
        for step in finding.remedy:
            lines.append(f"  remedy:   {step}")
        if finding.references:
            lines.append(f"  refs:     {', '.join(finding.references)}")
        lines.append("")
    inputs = result.inputs
    lines.append(f"read: {inputs.get('records', 0)} record(s), {inputs.get('statuses', 0)} status(es), "
                 f"{inputs.get('events', 0)} event(s), {len(inputs.get('logs', []))} log file(s), "
                 f"{inputs.get('dsn_parsed', 0)} DSN(s)")
    for note in inputs.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _evidence_line(evidence: dict[str, Any]) -> str:
    parts = [f"count {evidence.get('count', 0)}"]
    for key in ("by_destination_domain", "by_remote_host", "by_client", "accounts", "clients",
                "destinations"):
        rows = evidence.get(key)
        if not rows:
            continue
        shown = []
        for row in rows[:3]:
            if isinstance(row, dict):
                label = row.get("key") or row.get("account") or row.get("client") or row.get("domain")
                number = row.get("count") or row.get("messages")
                shown.append(f"{label} ({number})" if number is not None else str(label))
        parts.append(f"{key.replace('by_', '').replace('_', ' ')}: {', '.join(shown)}")
    return "; ".join(parts)


class _CallableModule(types.ModuleType):
    """`queuetool.diagnose(spool, ...)` calls `diagnose()`; the module's other names
    (DiagnoseResult, render_text ...) stay reachable (same pattern as queuetool.trace)."""

    def __call__(self, *args: Any, **kwargs: Any) -> DiagnoseResult:
        return diagnose(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

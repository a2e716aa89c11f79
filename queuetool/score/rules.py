"""The scoring rules: each a small pure function with a name, points and a one-line why.

A rule looks at a `RuleInput` and returns None (no hit), a `why` string (full points)
or `(scale, why)` (points x scale; scale 0 marks an informational hit, negative scale
takes points away). Rules never read files and never keep state, so scores do not
depend on scan order. docs/rules.md lists every rule with what it catches and what it
may wrongly catch. Stage "record" rules run in the scan workers; stage "spool" rules
need spool-wide context (campaign sizes, the account's trace verdict) and run after.
"""
from __future__ import annotations

import datetime as _dt
import email.utils
import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar, Union

from ..config import Settings, address_domain, address_domains
from ..headers import bare_address
from ..model import QueuedMessage
from .content import BodyFacts

Finding = Union[None, str, tuple[float, str]]


@dataclass
class SpoolFacts:
    """Spool-wide context for one record (filled by analysis.analyze)."""

    campaign: str | None = None
    campaign_size: int = 1
    campaign_flagged: int = 0
    account: str | None = None
    account_verdict: str | None = None   # compromised / suspicious / normal, from trace
    account_messages: int = 0
    account_flagged: int = 0
    trace_available: bool = False


_T = TypeVar("_T")


class _once(Generic[_T]):
    """functools.cached_property without the lock it takes on every read in Python 3.11:
    the value lands in the instance dict, so later reads are plain attribute reads."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func, self.name, self.__doc__ = func, func.__name__, func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> _T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.func(instance)
        return value


def header_index(record: QueuedMessage) -> dict[str, str]:
    """Lower-case header name -> its first value: one pass instead of a scan per lookup."""
    return {name.lower(): value for name, value in reversed(record.headers)}


@dataclass
class RuleInput:
    """What a rule sees; facts several rules need are computed once, on first use."""

    record: QueuedMessage
    settings: Settings
    body: BodyFacts | None = None          # None unless --full
    full: bool = False
    spool: SpoolFacts = field(default_factory=SpoolFacts)

    @_once
    def headers(self) -> dict[str, str]:
        """header_index(record): lower-case name -> first value."""
        return header_index(self.record)

    @_once
    def login(self) -> str | None:
        """login_of(record)."""
        return self.record.auth_user or login_of(self.record, self.headers)

    @_once
    def from_address(self) -> str | None:
        """header_from_address(record)."""
        return header_from_address(self.record)

    @_once
    def injected(self) -> bool:
        """injected_locally(record)."""
        if self.record.client_ip:  # decided by the client address; no header needed
            return injected_locally(self.record)
        return injected_locally(self.record, self.headers)

    @_once
    def recipient_domains(self) -> list[str | None]:
        """address_domain of each recipient, in order."""
        return address_domains(self.record.recipients)

    @_once
    def outside(self) -> list[str]:
        """outside_recipients(record, settings)."""
        return outside_recipients(self.record, self.settings, self.headers, self.recipient_domains)


@dataclass(frozen=True)
class Rule:
    name: str
    points: float          # default weight; [weights] in queuetool.toml overrides it
    category: str          # spam | relay | backscatter | info: which verdict it feeds
    stage: str             # record | body | spool
    why: str               # what it catches (one line, for docs and --list-rules)
    check: Callable[[RuleInput], Finding]


# ---------------------------------------------------------------- shared facts
class Prefiltered:
    """A case-insensitive regex searched only where it can match; same results, far faster.

    `starts` are lower-case literals one of which every match begins with; `needs`, if
    given, literals one of which every match contains. On ASCII text (where re.I folds
    exactly like str.lower) the search is skipped when the literals are absent and
    begins at the first `starts` literal otherwise; other text gets the plain search.
    Why: re tries every alternative at every position, ~20 µs per Received header,
    and most headers and subjects contain none of the words.
    """

    __slots__ = ("pattern", "starts", "needs", "_first", "_lower")

    def __init__(self, pattern: re.Pattern[str], starts: tuple[str, ...], needs: tuple[str, ...] = ()) -> None:
        self.pattern, self.starts, self.needs = pattern, starts, needs
        # One search for the leftmost of the literals (re scans literal alternatives fast).
        self._first = re.compile("|".join(map(re.escape, starts)))
        # For lower_matches: a pattern written in lower case (no escapes naming a character
        # by number), without re.I, finds the same spans in lower-cased ASCII text, faster.
        source = pattern.pattern
        plain = source == source.lower() and not re.search(r"\\[xuN0-7]", source)
        self._lower = re.compile(source, pattern.flags & ~re.I) if plain else None

    def _first_start(self, low: str) -> int:
        """Where the first match can begin in lower-cased ASCII text; -1 when there is none."""
        if self.needs and not any(word in low for word in self.needs):
            return -1
        found = self._first.search(low)
        return found.start() if found else -1

    def search(self, text: str) -> re.Match[str] | None:
        if not text.isascii():
            return self.pattern.search(text)
        at = self._first_start(text.lower())
        return None if at < 0 else self.pattern.search(text, at)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        if not text.isascii():
            return self.pattern.finditer(text)
        at = self._first_start(text.lower())
        return iter(()) if at < 0 else self.pattern.finditer(text, at)

    def lower_matches(self, text: str) -> set[str]:
        """{m.group(0).lower() for m in self.finditer(text)}: the words found, lower-cased."""
        if self._lower is None or not text.isascii():
            return {m.group(0).lower() for m in self.finditer(text)}
        low = text.lower()
        at = self._first_start(low)
        return set() if at < 0 else {m.group(0) for m in self._lower.finditer(low, at)}


_AUTH_RECEIVED = re.compile(
    r"\bwith\s+(?:ESMTPSA|ESMTPA|LMTPA|UTF8SMTPSA|UTF8SMTPA|ASMTP)\b|\(Authenticated sender:\s*([^)\s]+)\)"
    r"|\bauthenticated\s+(?:as|user)\s+([^\s;)]+)", re.I)
_LOCAL_INJECTION = re.compile(
    r"\bfrom userid \d+|\bwith local(?:-esmtp|-bsmtp)?\b|/Submit\)|\(from [^)\s]+@localhost\)"
    r"|\bfrom localhost\b|\[127\.\d+\.\d+\.\d+\]|\[::1\]", re.I)
_ADDRESS_TEXT = r"[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
_ADDRESS = re.compile(f"^{_ADDRESS_TEXT}$")
# Addresses joined by "\n", which no valid address holds: all of a message's
# addresses checked in one match (nearly always all valid) instead of one match each.
_ADDRESS_LINES = re.compile(f"{_ADDRESS_TEXT}(?:\n{_ADDRESS_TEXT})*")
DSN_SUBJECT = re.compile(
    r"undeliver|delivery status|returned mail|failure notice|mail delivery (?:failed|system)"
    r"|non[- ]?delivery|delivery (?:failure|has failed)|could not be delivered", re.I)
DSN_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery (?:system|subsystem)", re.I)
SHORTENERS = frozenset({
    "bit.ly", "tinyurl.com", "goo.gl", "t.co", "ow.ly", "is.gd", "buff.ly", "cutt.ly",
    "rebrand.ly", "shorturl.at", "tiny.cc", "rb.gy", "t.ly", "s.id", "bl.ink",
})
# Small, documented vocabulary (docs/rules.md): pharmacy spam and credential phishing.
SPAM_WORDS = re.compile(
    r"\b(?:viagra|cialis|levitra|pharmacy|pharma|pills?|tramadol|xanax|valium|phentermine|"
    r"prescription|meds|medications?|erectile|weight loss|"
    r"verify your account|account (?:has been )?suspended|confirm your (?:password|identity)|"
    r"password (?:expires?|expired)|unusual (?:sign-in|login) activity|update your payment|"
    r"wire transfer|lottery|you have won|bitcoin investment|crypto profit)\b", re.I)
# The same patterns with the literals their matches start with (tests/score check them).
AUTH_RECEIVED_FAST = Prefiltered(_AUTH_RECEIVED, ("with", "(authenticated", "authenticated"),
                                 needs=("mtpa", "mtpsa", "asmtp", "authenticated"))
LOCAL_INJECTION_FAST = Prefiltered(_LOCAL_INJECTION, (
    "from userid ", "with local", "/submit)", "(from ", "from localhost", "[127.", "[::1]"))
DSN_SUBJECT_FAST = Prefiltered(DSN_SUBJECT, (
    "undeliver", "delivery status", "returned mail", "failure notice", "mail delivery ", "non",
    "delivery ", "could not be delivered"))
DSN_FROM_FAST = Prefiltered(DSN_FROM, ("mailer-daemon", "postmaster", "mail delivery "))
SPAM_WORDS_FAST = Prefiltered(SPAM_WORDS, (
    "viagra", "cialis", "levitra", "pharma", "pill", "tramadol", "xanax", "valium", "phentermine",
    "prescription", "med", "erectile", "weight loss", "verify your account", "account ",
    "confirm your ", "password ", "unusual ", "update your payment", "wire transfer", "lottery",
    "you have won", "bitcoin investment", "crypto profit"))


def _newest_received(record: QueuedMessage, headers: dict[str, str] | None) -> str | None:
    if not record.headers:
        return None
    return headers.get("received") if headers is not None else record.header("Received")


def login_of(record: QueuedMessage, headers: dict[str, str] | None = None) -> str | None:
    """The SMTP AUTH identity: the record's, else the newest Received header's.

    `headers`, if given, is header_index(record) (saves a header scan).
    """
    if record.auth_user:
        return record.auth_user
    newest = _newest_received(record, headers)
    if newest:
        match = AUTH_RECEIVED_FAST.search(newest)
        if match:
            return match.group(1) or match.group(2) or "(authenticated)"
    if record.details.get("header_authenticated"):  # noted before the headers were dropped
        return "(authenticated)"
    return None


def note_login(record: QueuedMessage) -> None:
    """Keep what the Received header says about the login once headers are dropped."""
    if record.auth_user:
        return
    login = login_of(record)
    if login == "(authenticated)":
        record.details.setdefault("header_authenticated", "header:Received")
    elif login:
        record.auth_user, record.auth_evidence = login, "header:Received"


# Queues only local programs write to: Postfix maildrop, IIS/Exchange pickup.
LOCAL_QUEUES = frozenset({"maildrop", "pickup"})
NULL_SENDERS = frozenset({"", "<>", "mailer-daemon"})


def is_null_sender(sender: str | None) -> bool:
    """`<>`, and the bare MAILER-DAEMON some MTAs (Sendmail) store for their own bounces."""
    return sender is not None and sender.strip().lower() in NULL_SENDERS


@functools.lru_cache(maxsize=4096)
def _is_loopback(address: str) -> bool | None:
    """Whether an IP address is a loopback one; None when it is no IP address.

    Cached: a spool has few distinct clients and ipaddress parsing costs microseconds.
    """
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return None


def injected_locally(record: QueuedMessage, headers: dict[str, str] | None = None) -> bool:
    """Submitted on the server itself (sendmail command, pickup, loopback SMTP)."""
    if record.details.get("rewrite_context") == "local" and not record.client_ip:
        return True
    if record.client_ip:
        return _is_loopback(record.client_ip.strip("[]")) is True
    if record.queue in LOCAL_QUEUES:
        return True
    newest = _newest_received(record, headers)
    return bool(newest and LOCAL_INJECTION_FAST.search(newest))


def from_outside_client(record: QueuedMessage) -> bool:
    """A known SMTP client that is not the server itself."""
    if not record.client_ip:
        return False
    return _is_loopback(record.client_ip.strip("[]")) is not True


def header_from_address(record: QueuedMessage) -> str | None:
    """The address in the From header (`Name <a@b>`, `a@b (Name)`, `a@b`), or None."""
    value = record.header_from
    if not value:
        return None
    addr = bare_address(value)
    if addr and (" " in addr or "(" in addr):
        addr = next((token for token in addr.split() if "@" in token), addr.split()[0])
    return addr or None


_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;]+@[^\s<>;]+?)>?\s*;", re.I)


_RECEIVED_FOR_FAST = Prefiltered(_RECEIVED_FOR, ("for",))


def forwarded_from(record: QueuedMessage, settings: Settings,
                   headers: dict[str, str] | None = None) -> str | None:
    """Our address the newest Received header names (`for <x>`) when mail was sent on by an alias."""
    newest = _newest_received(record, headers)
    match = _RECEIVED_FOR_FAST.search(newest or "")
    if match and settings.is_ours(address_domain(match.group(1))):
        return match.group(1)
    return None


def outside_recipients(record: QueuedMessage, settings: Settings, headers: dict[str, str] | None = None,
                       domains: list[str | None] | None = None) -> list[str]:
    """Recipients outside our domains, unless the mail came for one of our addresses (an alias).

    `headers` (header_index) and `domains` (the recipients' address_domain) save work if known.
    """
    if domains is None:
        domains = address_domains(record.recipients)
    is_ours = settings.is_ours
    outside = [rcpt for rcpt, domain in zip(record.recipients, domains) if not is_ours(domain)]
    if outside and forwarded_from(record, settings, headers):
        return []
    return outside


def is_dsn(record: QueuedMessage, headers: dict[str, str] | None = None) -> bool:
    """Null sender plus any sign of a delivery report (multipart/report, bounce From/Subject)."""
    if record.sender is not None and not is_null_sender(record.sender):
        return False
    ctype = (headers.get("content-type") if headers is not None else record.header("Content-Type")) or ""
    report = "multipart/report" in ctype.lower()
    if record.sender is None:  # envelope unknown (e.g. Exchange queue files): need two signs
        return report and bool(DSN_FROM_FAST.search(record.header_from or ""))
    return (report or bool(DSN_FROM_FAST.search(record.header_from or ""))
            or bool(DSN_SUBJECT_FAST.search(record.subject or "")))


_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
# The form nearly every Date header has: "Mon, 21 Sep 2026 14:04:46 +0000" (a trailing
# comment such as " (UTC)" allowed: email.utils ignores what follows the zone too).
_RFC5322_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})(?: [\s\S]*)?\Z")


def _parse_rfc5322_date(value: str) -> _dt.datetime | None:
    """email.utils.parsedate_to_datetime for the common form, ~10x faster; None for any
    other form (the caller falls back). Raises ValueError where email.utils would."""
    match = _RFC5322_DATE.match(value)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, zone_h, zone_m = match.groups()
    yy = int(year)
    if yy < 100:  # what email.utils does with a two-digit year, even written as 4 digits
        yy += 1900 if yy > 68 else 2000
    offset = int(zone_h) * 3600 + int(zone_m) * 60
    if sign == "-":
        if not offset:  # -0000: "no zone information", a naive time in email.utils
            return _dt.datetime(yy, _MONTHS[month], int(day), int(hour), int(minute), int(second))
        offset = -offset
    zone = _ZONES.get(offset)
    if zone is None:
        zone = _ZONES[offset] = _dt.timezone(_dt.timedelta(seconds=offset))  # ValueError if >= 24 h
    return _dt.datetime(yy, _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=zone)


_ZONES: dict[int, _dt.timezone] = {}  # offset seconds -> timezone (bounded: only offsets < 24 h)


@functools.lru_cache(maxsize=1024)
def _parse_time(value: str | None) -> _dt.datetime | None:
    """A Date header or an ISO arrival time as an aware datetime; None if it does not parse.

    Cached: records of one spool share arrival seconds (datetimes are immutable).
    """
    if not value:
        return None
    try:
        if value.endswith("Z") and "T" in value:
            return _dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=_dt.timezone.utc)
        when = _parse_rfc5322_date(value) or email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def _owner_parts(login: str, settings: Settings) -> tuple[str, str | None]:
    return _login_parts(login)


@functools.lru_cache(maxsize=1024)
def _login_parts(login: str) -> tuple[str, str | None]:
    """(local part, domain) of a login; cached: a spool has few accounts."""
    local, _, domain = login.lower().partition("@")
    local = local.split("\\")[-1]  # DOMAIN\user (Exchange)
    return local, (domain or None)


# ---------------------------------------------------------------- record rules
def unauthenticated_relay(inp: RuleInput) -> Finding:
    rec, cfg = inp.record, inp.settings
    if inp.login or not rec.sender or is_null_sender(rec.sender) or not cfg.our_domains:
        return None
    sender_domain = address_domain(rec.sender)
    if cfg.is_ours(sender_domain):
        return None
    outside = inp.outside
    if not outside:
        return None
    where = "injected on this server" if inp.injected else f"client {rec.client_ip or 'unknown'}"
    return (f"no login, sender domain {sender_domain or '?'} and {len(outside)} recipient(s) "
            f"(e.g. {outside[0]}) are not ours; {where}")


def local_injection_to_outside(inp: RuleInput) -> Finding:
    rec, cfg = inp.record, inp.settings
    if inp.login or not rec.sender or not inp.injected or not cfg.our_domains:
        return None
    if not cfg.is_ours(address_domain(rec.sender)) or is_null_sender(rec.sender):
        return None  # unauthenticated_relay covers foreign senders, null_sender_dsn bounces
    outside = inp.outside
    if not outside:
        return None
    from_addr = inp.from_address
    from_domain = address_domain(from_addr)
    if from_domain and not cfg.is_ours(from_domain):
        return (f"submitted on this server without a login (web script / sendmail command) as "
                f"{rec.sender} with a foreign From {from_addr} to {len(outside)} outside recipient(s)")
    if len(outside) >= 2:
        return (f"submitted on this server without a login (web script / sendmail command) as "
                f"{rec.sender} to {len(outside)} outside recipients at once")
    return 0.6, (f"submitted on this server without a login (web script / sendmail command) "
                 f"as {rec.sender} to {len(outside)} outside recipient(s)")


def sender_not_owned(inp: RuleInput) -> Finding:
    rec, cfg = inp.record, inp.settings
    login = inp.login
    if not login:
        return None
    unknown_identity = login == "(authenticated)"
    login_local, login_domain = _owner_parts(login, cfg)
    worst: tuple[float, str] | None = None
    for label, addr in (("envelope sender", rec.sender), ("From", inp.from_address)):
        if not addr or "@" not in addr:
            continue
        local, domain = addr.lower().rsplit("@", 1)
        if cfg.our_domains and not cfg.is_ours(domain) and domain != login_domain:
            finding = (1.0, f"account {login} sent with {label} {addr}: domain {domain} is not ours")
        elif not unknown_identity and local != login_local and (cfg.is_ours(domain) or domain == login_domain):
            finding = (0.5, f"account {login} sent with {label} {addr}, another user's address")
        else:
            continue
        if worst is None or finding[0] > worst[0]:
            worst = finding
    return worst


def message_id_domain(record: QueuedMessage) -> str | None:
    value = (record.message_id or "").strip().strip("<>")
    return value.rpartition("@")[2].lower().rstrip(".") or None if "@" in value else None


def message_id_foreign(inp: RuleInput) -> Finding:
    rec, cfg = inp.record, inp.settings
    if not inp.login or not cfg.our_domains:
        return None
    domain = message_id_domain(rec)
    if not domain or cfg.is_ours(domain):
        return None
    own = {address_domain(rec.sender), address_domain(inp.from_address)} - {None}
    if any(domain == d or domain.endswith("." + d) for d in own):
        return None
    return f"authenticated submission whose Message-ID domain {domain} is neither ours nor the sender's"


FANOUT_RECIPIENTS = 10
FANOUT_DOMAINS = 5


def recipient_fanout(inp: RuleInput) -> Finding:
    rec = inp.record
    recipients = len(rec.recipients) + len(rec.done_recipients)
    domains = set(inp.recipient_domains)
    if rec.done_recipients:
        domains.update(address_domains(rec.done_recipients))
    domains.discard(None)
    if recipients >= FANOUT_RECIPIENTS or len(domains) >= FANOUT_DOMAINS:
        return f"{recipients} recipients in {len(domains)} domains in one message"
    if recipients >= FANOUT_RECIPIENTS // 2 and len(domains) >= 3:
        return 0.5, f"{recipients} recipients in {len(domains)} domains in one message"
    return None


def null_sender_dsn(inp: RuleInput) -> Finding:
    rec = inp.record
    if not is_dsn(rec, inp.headers):
        return None
    ctype = (inp.headers.get("content-type") or "").split(";")[0].strip() or "no Content-Type"
    return f"null sender <> delivery report ({ctype}) queued here"


def bounce_origin(inp: RuleInput) -> Finding:
    """Whether the bounced original was sent by this server: needs the returned headers."""
    rec, cfg = inp.record, inp.settings
    if not is_dsn(rec, inp.headers):
        return None
    if inp.body is None:
        return 0.0, "skipped: the whole message could not be read"
    returned = inp.body.returned_headers
    if not returned:
        return 0.0, "delivery report without the original's headers; origin unknown"
    msgid = next((v for k, v in returned if k.lower() == "message-id"), "")
    received = [v for k, v in returned if k.lower() == "received"]
    ours_in_chain = any(
        cfg.is_ours(m.group(1)) for v in received for m in re.finditer(r"\bby\s+([\w.-]+)", v)
    )
    sender = next((v for k, v in returned if k.lower() in ("from", "return-path")), "")
    sender_ours = cfg.is_ours(address_domain(email.utils.parseaddr(sender)[1]))
    if ours_in_chain and sender_ours:
        return 0.0, (f"the bounced original came from our address {sender.strip()[:80]} through this "
                     f"server (Message-ID {msgid.strip() or '-'}): a genuine bounce if that user sent it")
    if ours_in_chain:
        return 1.0, (f"bounce of mail this server accepted for an outside sender {sender.strip()[:80] or '?'} "
                     "(likely forged): backscatter from this server")
    return 1.0, (f"forged bounce: the original (Message-ID {msgid.strip() or '-'}) never passed "
                 "through this server")


def local_sender_from_outside(inp: RuleInput) -> Finding:
    rec, cfg = inp.record, inp.settings
    if inp.login or not from_outside_client(rec) or not cfg.local_domains:
        return None
    for label, addr in (("envelope sender", rec.sender), ("From", inp.from_address)):
        if addr and cfg.is_local(address_domain(addr)):
            return f"{label} {addr} is a local address but client {rec.client_ip} did not log in"
    return None


def missing_date(inp: RuleInput) -> Finding:
    if not inp.record.headers or inp.record.date:
        return None
    return "no Date header"


def missing_message_id(inp: RuleInput) -> Finding:
    if not inp.record.headers or inp.record.message_id:
        return None
    return "no Message-ID header"


DATE_SKEW_DAYS = 3


def date_far_from_arrival(inp: RuleInput) -> Finding:
    rec = inp.record
    if not rec.date:
        return None
    written = _parse_time(rec.date)
    if written is None:
        return f"Date header {rec.date[:60]!r} does not parse"
    arrived = _parse_time(rec.arrival)
    if arrived is None:
        return None
    days = (written - arrived).total_seconds() / 86400
    if abs(days) >= DATE_SKEW_DAYS:
        return f"Date is {abs(days):.0f} day(s) {'after' if days > 0 else 'before'} arrival"
    return None


def malformed_address(inp: RuleInput) -> Finding:
    rec = inp.record
    envelope = list(filter(None, (rec.sender, *rec.recipients)))
    joined = "\n".join(envelope)
    if joined.count("\n") == len(envelope) - 1 and _ADDRESS_LINES.fullmatch(joined):
        bad = []
    else:
        bad = [a for a in envelope if not _ADDRESS.match(a)]
    from_addr = inp.from_address
    if rec.header_from is not None and (not from_addr or not _ADDRESS.match(from_addr)):
        bad.append(f"From: {rec.header_from}")
    if not bad:
        return None
    return f"{len(bad)} malformed address(es), e.g. {bad[0][:80]!r}"


def parser_defects(inp: RuleInput) -> Finding:
    if inp.body is None or not inp.body.defects:
        return None
    return min(len(inp.body.defects), 3) / 3, "mail-parser defects: " + ", ".join(inp.body.defects[:4])


def _body_rule(inp: RuleInput) -> BodyFacts | str:
    return inp.body if inp.body is not None else "skipped: the whole message could not be read"


MANY_URLS = 5


def many_urls(inp: RuleInput) -> Finding:
    body = _body_rule(inp)
    if isinstance(body, str):
        return 0.0, body
    if body.url_count >= MANY_URLS:
        return f"{body.url_count} URLs in the text"
    return None


def url_shortener(inp: RuleInput) -> Finding:
    body = _body_rule(inp)
    if isinstance(body, str):
        return 0.0, body
    short = [h for h in body.url_hosts if h in SHORTENERS]
    return f"links through URL shortener(s) {', '.join(short)}" if short else None


def html_only(inp: RuleInput) -> Finding:
    body = _body_rule(inp)
    if isinstance(body, str):
        return 0.0, body
    return "HTML without a plain-text part" if body.html_only else None


def base64_text(inp: RuleInput) -> Finding:
    body = _body_rule(inp)
    if isinstance(body, str):
        return 0.0, body
    return "text part sent base64-encoded (hides words from filters)" if body.base64_text else None


def spam_vocabulary(inp: RuleInput) -> Finding:
    rec = inp.record
    words = SPAM_WORDS_FAST.lower_matches(rec.subject or "")
    where = "subject"
    if inp.body is not None:
        words |= SPAM_WORDS_FAST.lower_matches(inp.body.text)
        where = "subject/body"
    if not words:
        return None
    return min(len(words), 2) / 2, f"pharmacy/phishing words in {where}: {', '.join(sorted(words)[:5])}"


def exchange_anonymous_external(inp: RuleInput) -> Finding:
    rec, cfg = inp.record, inp.settings
    auth_as = inp.headers.get("x-ms-exchange-organization-authas")
    if not auth_as or auth_as.strip().lower() != "anonymous":
        return None
    outside = inp.outside if cfg.our_domains else []
    if not outside:
        return None
    return f"Exchange accepted it anonymously (AuthAs: Anonymous) for {len(outside)} external recipient(s)"


def exchange_scl(inp: RuleInput) -> Finding:
    value = inp.headers.get("x-ms-exchange-organization-scl")
    if value is None:
        return None
    try:
        scl = int((value or "").strip())
    except ValueError:
        return None
    if scl >= 5:
        return min((scl - 4) / 4, 1.0), f"Exchange spam confidence level SCL {scl}"
    return None


# ---------------------------------------------------------------- spool rules
CAMPAIGN_MIN_SIZE = 5


def campaign_size(inp: RuleInput) -> Finding:
    facts = inp.spool
    if not facts.campaign or facts.campaign_size < CAMPAIGN_MIN_SIZE:
        return None
    share = facts.campaign_flagged / facts.campaign_size
    if share < 0.5:
        return None
    return (f"one of {facts.campaign_size} messages of campaign {facts.campaign}, "
            f"{facts.campaign_flagged} of them flagged by other rules")


def account_trace_verdict(inp: RuleInput) -> Finding:
    facts = inp.spool
    if not facts.account:
        return None
    if not facts.trace_available or facts.account_verdict is None:
        return 0.0, f"no trace verdict for account {facts.account} (give --log, or trace unavailable)"
    scale = {"compromised": 1.0, "suspicious": 0.5}.get(facts.account_verdict, 0.0)
    return scale, f"trace says account {facts.account} is {facts.account_verdict}"


ACCOUNT_MIN_MESSAGES = 5


def account_mostly_flagged(inp: RuleInput) -> Finding:
    facts = inp.spool
    if not facts.account or facts.account_messages < ACCOUNT_MIN_MESSAGES:
        return None
    if facts.account_flagged * 2 < facts.account_messages:
        return None
    return (f"account {facts.account} submitted {facts.account_messages} queued messages, "
            f"{facts.account_flagged} flagged by other rules")


RULES: tuple[Rule, ...] = (
    Rule("unauthenticated_relay", 6.0, "relay", "record",
         "mail from a foreign sender domain to foreign recipients with no login (open relay, or a script on the server)",
         unauthenticated_relay),
    Rule("exchange_anonymous_external", 6.0, "relay", "record",
         "Exchange accepted anonymously (AuthAs: Anonymous) and routes to external recipients",
         exchange_anonymous_external),
    Rule("local_injection_to_outside", 5.0, "spam", "record",
         "submitted on the server without a login to outside recipients (full points with a foreign From)",
         local_injection_to_outside),
    Rule("sender_not_owned", 4.0, "spam", "record",
         "an authenticated account used an envelope sender or From it does not own",
         sender_not_owned),
    Rule("message_id_foreign", 2.0, "spam", "record",
         "authenticated submission with a Message-ID domain that is neither ours nor the sender's",
         message_id_foreign),
    Rule("recipient_fanout", 2.0, "spam", "record",
         "many recipients in many domains in one message", recipient_fanout),
    Rule("null_sender_dsn", 5.0, "backscatter", "record",
         "null-sender delivery report (bounce) in the queue", null_sender_dsn),
    Rule("bounce_origin", 2.0, "backscatter", "body",
         "with --full: the bounced original was not sent by one of our users through this server",
         bounce_origin),
    Rule("local_sender_from_outside", 4.0, "spam", "record",
         "a local sender address arriving from an outside client without a login", local_sender_from_outside),
    Rule("missing_date", 1.0, "spam", "record", "no Date header", missing_date),
    Rule("missing_message_id", 1.0, "spam", "record", "no Message-ID header", missing_message_id),
    Rule("date_far_from_arrival", 1.0, "spam", "record",
         "Date header unparsable or days away from arrival", date_far_from_arrival),
    Rule("malformed_address", 1.0, "spam", "record",
         "envelope or From address that is not a valid address", malformed_address),
    Rule("parser_defects", 1.0, "spam", "body", "with --full: MIME defects mail-parser reports", parser_defects),
    Rule("many_urls", 1.0, "spam", "body", "with --full: five or more URLs in the text", many_urls),
    Rule("url_shortener", 1.5, "spam", "body", "with --full: links through a URL shortener", url_shortener),
    Rule("html_only", 1.0, "spam", "body", "with --full: HTML with no plain-text alternative", html_only),
    Rule("base64_text", 0.5, "spam", "body", "with --full: text part base64-encoded", base64_text),
    Rule("spam_vocabulary", 2.5, "spam", "record",
         "pharmacy/phishing vocabulary in the subject (and body with --full)", spam_vocabulary),
    Rule("exchange_scl", 3.0, "spam", "record", "Exchange SCL of 5 or more", exchange_scl),
    Rule("campaign_size", 3.0, "spam", "spool",
         "part of a campaign of 5+ messages, at least half of which other rules flag", campaign_size),
    Rule("account_trace_verdict", 3.0, "spam", "spool",
         "the submitting account is compromised (full points) or suspicious (half) per trace",
         account_trace_verdict),
    Rule("account_mostly_flagged", 2.0, "spam", "spool",
         "the submitting account has 5+ queued messages, at least half flagged by other rules",
         account_mostly_flagged),
)
RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


def rule_table() -> list[dict[str, Any]]:
    """Rows for docs and `--list-rules`: name, points, category, stage, why."""
    return [{"rule": r.name, "points": r.points, "category": r.category, "stage": r.stage, "why": r.why}
            for r in RULES]

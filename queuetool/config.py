"""Settings every verb shares: the server's domains, rule weights, verdict thresholds.

A server's domains are local (delivered here), relay (accepted and forwarded through a
connector) or shared (split with another server); all three count as "ours" when a rule
asks whether mail leaves the organisation. They come from options, from a
`queuetool.toml` (`--config`), or, when none are given, are inferred from the spool, in
which case every verdict that rests on them says so.

    # queuetool.toml
    [domains]
    local = ["example.com"]
    relay = ["partner-relay.example"]
    shared = []
    [weights]                 # rule name -> points (see docs/rules.md)
    recipient_fanout = 3.0
    [thresholds]              # verdict thresholds
    spam = 5.0
"""
from __future__ import annotations

import collections
import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

DEFAULT_THRESHOLDS: dict[str, float] = {
    "spam": 5.0,         # total points at or above: spam
    "relay": 5.0,        # relay-category points at or above: relay
    "backscatter": 5.0,  # backscatter-category points at or above: backscatter
}
# How many records domain inference looks at (it is a pre-pass; keep it cheap).
INFER_SAMPLE = 5000

_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)+$")


class ConfigError(ValueError):
    """A settings file or option that cannot be used (one-line reason)."""


@dataclass(frozen=True)
class Settings:
    """Everything scoring needs to know about the server; picklable for workers."""

    local_domains: frozenset[str] = frozenset()
    relay_domains: frozenset[str] = frozenset()
    shared_domains: frozenset[str] = frozenset()
    weights: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    # True when the domains were guessed from the spool rather than given.
    domains_inferred: bool = False
    inference_evidence: str = ""
    # Answers already given by is_ours/is_local, per domain: the rules ask about the same
    # few domains for every message. Not compared, not pickled (see __getstate__).
    _ours_memo: dict[str | None, bool] = field(default_factory=dict, init=False, repr=False, compare=False)
    _local_memo: dict[str | None, bool] = field(default_factory=dict, init=False, repr=False, compare=False)
    _threshold_memo: dict[str, float] = field(default_factory=dict, init=False, repr=False, compare=False)
    _ours: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ours", frozenset(self.local_domains | self.relay_domains | self.shared_domains))

    @property
    def our_domains(self) -> frozenset[str]:
        return self._ours

    def is_ours(self, domain: str | None) -> bool:
        """A domain (or a subdomain of one) this server is responsible for."""
        try:
            return self._ours_memo[domain]
        except KeyError:
            return _remember(self._ours_memo, domain, _in_domains(domain, self._ours))

    def is_local(self, domain: str | None) -> bool:
        try:
            return self._local_memo[domain]
        except KeyError:
            return _remember(self._local_memo, domain, _in_domains(domain, self.local_domains))

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the memos (workers get a small object and build their own)."""
        return {**self.__dict__, "_ours_memo": {}, "_local_memo": {}}

    def threshold(self, name: str) -> float:
        try:
            return self._threshold_memo[name]
        except KeyError:
            value = self._threshold_memo[name] = float(self.thresholds.get(name, DEFAULT_THRESHOLDS.get(name, 5.0)))
            return value

    def points(self, rule: str, default: float) -> float:
        return float(self.weights.get(rule, default))


MEMO_LIMIT = 4096  # distinct domains remembered per memo; cleared when full (bounded memory)


_Answer = TypeVar("_Answer")


def _remember(memo: dict[Any, _Answer], key: Any, answer: _Answer) -> _Answer:
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = answer
    return answer


def _in_domains(domain: str | None, domains: frozenset[str]) -> bool:
    if not domain:
        return False
    domain = domain.lower().rstrip(".")
    if domain in domains:
        return True
    parts = domain.split(".")
    return any(".".join(parts[i:]) in domains for i in range(1, len(parts) - 1))


def normalize_domain(value: str) -> str:
    """Lower-case a domain given by a user; refuse what is not a domain name."""
    domain = value.strip().lower().lstrip("@").rstrip(".")
    if not _DOMAIN.match(domain):
        raise ConfigError(f"{value!r} is not a domain name")
    return domain


def _domain_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of domain names")
    return [normalize_domain(v) for v in value]


def _number_table(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"[{where}] must be a table of name = number")
    out = {}
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ConfigError(f"[{where}] {key} must be a number, not {number!r}")
        out[str(key)] = float(number)
    return out


def load_settings(
    config_path: str | Path | None = None,
    *,
    local_domains: Iterable[str] = (),
    relay_domains: Iterable[str] = (),
    shared_domains: Iterable[str] = (),
) -> Settings:
    """Settings from a queuetool.toml (optional) plus domains given as options.

    Domains given as options are added to those of the file.
    """
    data: dict[str, Any] = {}
    if config_path is not None:
        path = Path(config_path)
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read settings: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    domains = data.get("domains") or {}
    if not isinstance(domains, dict):
        raise ConfigError("[domains] must be a table with local/relay/shared lists")
    local = _domain_list(domains.get("local"), "domains.local") + [normalize_domain(d) for d in local_domains]
    relay = _domain_list(domains.get("relay"), "domains.relay") + [normalize_domain(d) for d in relay_domains]
    shared = _domain_list(domains.get("shared"), "domains.shared") + [normalize_domain(d) for d in shared_domains]
    thresholds = dict(DEFAULT_THRESHOLDS)
    thresholds.update(_number_table(data.get("thresholds"), "thresholds"))
    unknown = set(thresholds) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ConfigError(f"[thresholds] unknown name(s): {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(DEFAULT_THRESHOLDS)}")
    weights = _number_table(data.get("weights"), "weights")
    if weights:
        from .score.rules import RULES_BY_NAME

        unknown = set(weights) - set(RULES_BY_NAME)
        if unknown:
            raise ConfigError(f"[weights] unknown rule(s): {', '.join(sorted(unknown))}; see docs/rules.md")
    return Settings(
        local_domains=frozenset(local), relay_domains=frozenset(relay), shared_domains=frozenset(shared),
        weights=weights, thresholds=thresholds,
    )


# Raw text after the last "@" -> address_domain's answer: a spool's many addresses
# share few domains, and the rules ask for the domain of every recipient.
_DOMAIN_MEMO: dict[str, str | None] = {}


def address_domain(address: str | None) -> str | None:
    """Domain part of an address, lower-case; None when there is none."""
    if not address:
        return None
    at = address.rfind("@")
    if at < 0:
        return None
    raw = address[at + 1:]
    try:
        return _DOMAIN_MEMO[raw]
    except KeyError:
        return _remember(_DOMAIN_MEMO, raw, raw.strip().strip(">").lower().rstrip(".") or None)


def address_domains(addresses: Iterable[str | None]) -> list[str | None]:
    """[address_domain(a) for a in addresses], without a call per address whose domain
    is remembered (a message's recipients: the rules want all their domains)."""
    memo = _DOMAIN_MEMO
    domains = []
    for address in addresses:
        at = address.rfind("@") if address else -1
        if at >= 0 and (raw := address[at + 1:]) in memo:
            domains.append(memo[raw])
        else:
            domains.append(address_domain(address))
    return domains


_RECEIVED_BY = re.compile(r"\bby\s+([A-Za-z0-9.-]+\.[A-Za-z]{2,})", re.I)


def server_name_of(record) -> str | None:
    """The host that wrote the newest Received header (this server, for queued mail)."""
    received = record.header("Received") if record.headers else None
    if not received:
        return None
    match = _RECEIVED_BY.search(received)
    return match.group(1).lower() if match else None


def parent_domain(host: str) -> str:
    """mail.example.com -> example.com (a two-label name is returned as is)."""
    parts = host.split(".")
    return ".".join(parts[1:]) if len(parts) > 2 else host


def _owned_sender_domain(login: str, sender: str | None) -> str | None:
    """The sender's domain when the sender is the login's own mailbox, else None."""
    login_local, _, login_domain = login.lower().partition("@")
    login_local = login_local.split("\\")[-1]
    if not sender or "@" not in sender:
        return login_domain or None
    local, domain = sender.lower().rsplit("@", 1)
    return domain if local == login_local else None


def infer_domains(records: Iterable) -> tuple[list[str], str]:
    """Guess local domains from (a sample of) records; returns (domains, evidence).

    Two signals, both cheap and header-level: the parent domain of the host that wrote
    the newest Received header (the server itself), and the envelope-sender domains of
    authenticated submissions whose sender is the login's own address (alice sending as
    alice@...), when at least a quarter of the authenticated submissions share it; a
    compromised account forging other people's addresses does not count.
    """
    servers: collections.Counter[str] = collections.Counter()
    auth_domains: collections.Counter[str] = collections.Counter()
    authenticated = 0
    for record in records:
        server = server_name_of(record)
        if server:
            servers[parent_domain(server)] += 1
        if record.auth_user:
            authenticated += 1
            domain = _owned_sender_domain(record.auth_user, record.sender)
            if domain:
                auth_domains[domain] += 1
    found: dict[str, str] = {}
    if servers:
        domain, count = servers.most_common(1)[0]
        if _DOMAIN.match(domain):
            found[domain] = f"{domain}: server name in {count} Received header(s)"
    for domain, count in auth_domains.most_common(5):
        if count * 4 >= authenticated and domain not in found and _DOMAIN.match(domain):
            if not any(_in_domains(domain, frozenset([known])) for known in found):
                found[domain] = f"{domain}: sender of {count}/{authenticated} authenticated message(s)"
    return sorted(found), "; ".join(found[d] for d in sorted(found))


def with_inferred_domains(settings: Settings, records: Iterable) -> Settings:
    """`settings` unchanged if it has domains, else with local domains guessed from records."""
    if settings.our_domains:
        return settings
    domains, evidence = infer_domains(records)
    return dataclasses.replace(
        settings, local_domains=frozenset(domains), domains_inferred=True,
        inference_evidence=evidence or "no domain could be inferred",
    )

"""The analysis pipeline every verb calls: scan + rules + campaigns + spool-wide context.

    for record in analyze("/var/spool/postfix", settings=load_settings(local_domains=["example.com"])):
        print(record.id, record.verdict, record.score, record.campaign)

How it runs (and why memory stays flat at 10^6 messages):
1. Workers read each unit and run the per-record rules there (`prepare_record`, the
   scan engine's `process` hook); with --full they also parse the body.
2. The main process streams the scored records into a temporary spill file (pickles,
   not a list in memory), counts campaign feature keys in a fixed-size count-min sketch
   and keeps per-account counters (sets capped at ACCOUNT_SET_CAP members).
3. Keys seen at least twice are joined into campaigns (union-find); a second, compact
   spill of keys per record makes this a cheap re-read.
4. Records are read back from the spill, get their campaign, the spool rules
   (campaign size, the account's trace verdict) and their final verdict, and are yielded.

Hook for the trace module (queuetool/trace.py, optional; looked up by name):
- `trace.enrich_records(records, logset) -> Iterable[QueuedMessage]`: fills auth_user,
  auth_evidence, client_ip... from logs. When `logs` are given, records are enriched in
  the main process BEFORE the per-record rules run (rules then run there, not in workers).
- `trace.account_verdicts(accounts, logset) -> dict[str, str]`: account -> "compromised"
  / "suspicious" / "normal", given this module's `AccountStats` per account and the logs
  (None without --log: spool evidence only). Feeds the
  `account_trace_verdict` rule; without it that rule says there was no trace verdict.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

from .config import INFER_SAMPLE, Settings, address_domain, with_inferred_domains
from .model import QueuedMessage, QueueUnit
from .scan import scan, spools_of
from .score.campaigns import CountMinSketch, KeyUnion, campaign_id, campaign_keys
from .score.content import BodyFacts, body_facts
from .score.engine import apply_spool_rules, is_suspicious, score_record
from .score.rules import SpoolFacts, login_of, note_login
from .spools import MultiSpool, Spool, reader_for

TRACE_MODULE = "queuetool.trace"
ACCOUNT_SET_CAP = 256       # distinct IPs/HELOs/domains remembered per account
MAX_ACCOUNTS = 100_000      # beyond this, accounts are pooled as "(other accounts)"
_KEYS = "_campaign_keys"
_BODY = "_body"


@dataclass
class AccountStats:
    """What the spool says about one SMTP AUTH account (bounded memory)."""

    account: str
    messages: int = 0
    flagged: int = 0
    recipients: int = 0
    recipient_domains: set[str] = field(default_factory=set)
    client_ips: set[str] = field(default_factory=set)
    helos: set[str] = field(default_factory=set)
    first_seen: str | None = None
    last_seen: str | None = None
    from_mismatch: int = 0

    def add(self, record: QueuedMessage, suspicious: bool) -> None:
        self.messages += 1
        self.flagged += suspicious
        self.recipients += len(record.recipients)
        for rcpt in record.recipients:
            _add_capped(self.recipient_domains, address_domain(rcpt))
        _add_capped(self.client_ips, record.client_ip)
        _add_capped(self.helos, record.helo)
        if record.arrival:
            self.first_seen = min(self.first_seen or record.arrival, record.arrival)
            self.last_seen = max(self.last_seen or record.arrival, record.arrival)
        self.from_mismatch += any(hit.rule == "sender_not_owned" for hit in record.rules)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("recipient_domains", "client_ips", "helos"):
            data[key] = sorted(data[key])
        return data


def _add_capped(values: set[str], value: str | None) -> None:
    if value and len(values) < ACCOUNT_SET_CAP:
        values.add(value)


def trace_hooks() -> tuple[Callable | None, Callable | None]:
    """(enrich_records, account_verdicts) from queuetool.trace, None where absent."""
    try:
        trace = importlib.import_module(TRACE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != TRACE_MODULE:
            raise
        return None, None
    return getattr(trace, "enrich_records", None), getattr(trace, "account_verdicts", None)


@functools.lru_cache(maxsize=1)
def _trace_record_step() -> Callable | None:
    """trace.enrich_record(record, index) when the trace module has it (worker side)."""
    try:
        trace = importlib.import_module(TRACE_MODULE)
    except ModuleNotFoundError:
        return None
    return getattr(trace, "enrich_record", None)


def _read_body(record: QueuedMessage, roots: dict[str, tuple[str, str]]) -> BodyFacts | None:
    place = roots.get(record.spool or "")
    if place is None or not record.files:
        return None
    mta, root = place
    unit = QueueUnit(id=record.id, queue=record.queue, paths=tuple(record.files))
    try:
        raw = reader_for(mta).read_message_bytes(Path(root), unit)
        return body_facts(raw)
    except Exception as exc:  # noqa: BLE001 - a body we cannot parse is reported, not fatal
        record.details["body_error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        return None


def prepare_record(record: QueuedMessage, *, settings: Settings, full: bool,
                   roots: dict[str, tuple[str, str]], score: bool) -> None:
    """Per-record step run inside scan workers: body facts, record rules, campaign keys."""
    body = _read_body(record, roots) if full else None
    record.details[_KEYS] = campaign_keys(record, body)
    if score:
        enrich_one = _trace_record_step()
        if enrich_one is not None:  # the header-only attribution step (logins in Received)
            try:
                enrich_one(record, None)
            except Exception as exc:  # noqa: BLE001 - enrichment must never stop a scan
                record.add_error(f"trace enrichment failed: {type(exc).__name__}: {exc}")
        note_login(record)
        score_record(record, settings, body=body, full=full)
    else:
        record.details[_BODY] = body


def infer_settings(source: str | Path | Spool | MultiSpool, settings: Settings, *,
                   mta: str | None = None, sample: int = INFER_SAMPLE) -> Settings:
    """`settings` with local domains inferred from the first `sample` records when none are set."""
    if settings.our_domains or settings.domains_inferred:
        return settings
    records = itertools.islice(scan(source, mta=mta, keep_headers=True), sample)
    return with_inferred_domains(settings, records)


SPILL_BATCH = 512  # items per pickle: fewer calls, memory still bounded


class _Spill:
    """Append-only temp file of pickled items, written and read back in batches."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.pending = handle, []

    def add(self, item: Any) -> None:
        self.pending.append(item)
        if len(self.pending) >= SPILL_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            blob = pickle.dumps(self.pending, protocol=pickle.HIGHEST_PROTOCOL)
            self.handle.write(len(blob).to_bytes(8, "little") + blob)
            self.pending = []

    def __iter__(self) -> Iterator[Any]:
        """Every item in order (one whole read per batch; pickle.load on a file is slow)."""
        self.flush()
        self.handle.seek(0)
        while True:
            size = self.handle.read(8)
            if len(size) < 8:
                return
            yield from pickle.loads(self.handle.read(int.from_bytes(size, "little")))


def analyze(
    source: str | Path | Spool | MultiSpool,
    *,
    settings: Settings,
    logs: Sequence[str | Path] = (),
    full: bool = False,
    jobs: int = 1,
    ordered: bool = True,
    progress: bool = False,
    mta: str | None = None,
    keep_headers: bool = False,
    account_stats: dict[str, AccountStats] | None = None,
    logs_below: bool = False,
) -> Iterator[QueuedMessage]:
    """Yield every record of `source` scored, with verdict, rule hits and campaign.

    `logs` are mail/protocol logs handed to the trace hook (see module docstring).
    `logs_below` adds the logs found inside `source` when it is a copied server tree
    (spools.find_logs), as trace and diagnose do.
    `account_stats`, if given a dict, is filled with per-account statistics.
    """
    if logs_below:
        from .trace import with_logs_below

        logs = with_logs_below(logs, source)
    spools = spools_of(source, mta)
    settings = infer_settings(spools[0] if len(spools) == 1 else MultiSpool(spools), settings)
    enrich, account_verdicts = trace_hooks()
    logset = None
    if logs:
        from .logs import read_logs

        logset = read_logs(logs)
    enrich_here = enrich is not None and logset is not None
    roots = {spool.label: (spool.mta, str(spool.root)) for spool in spools}
    process = functools.partial(prepare_record, settings=settings, full=full, roots=roots,
                                score=not enrich_here)
    records: Iterable[QueuedMessage] = scan(
        MultiSpool(spools), full=full, jobs=jobs, ordered=ordered,
        keep_headers=keep_headers or enrich_here, process=process, progress=progress)
    if enrich_here:
        records = _score_after_enrichment(enrich(records, logset), settings, full, keep_headers)

    verdict_source = (lambda accounts: account_verdicts(accounts, logset)) if account_verdicts else None
    yield from finish_analysis(records, settings, account_stats=account_stats, verdict_source=verdict_source)


def finish_analysis(
    records: Iterable[QueuedMessage],
    settings: Settings,
    *,
    account_stats: dict[str, AccountStats] | None = None,
    verdict_source: Callable[[dict[str, AccountStats]], dict[str, str]] | None = None,
) -> Iterator[QueuedMessage]:
    """Steps 2-4 of the module docstring, on records that went through `prepare_record`."""
    accounts: dict[str, AccountStats] = {} if account_stats is None else account_stats
    sketch = CountMinSketch()
    with tempfile.TemporaryFile(prefix="queuetool-") as record_file, \
            tempfile.TemporaryFile(prefix="queuetool-keys-") as key_file:
        record_spill, key_spill = _Spill(record_file), _Spill(key_file)
        for record in records:
            keys = record.details.pop(_KEYS, [])
            for key in keys:
                sketch.add(key)
            account = login_of(record)
            if account and account not in accounts and len(accounts) >= MAX_ACCOUNTS:
                account = "(other accounts)"
            suspicious = is_suspicious(record, settings)
            if account:
                accounts.setdefault(account, AccountStats(account)).add(record, suspicious)
            record_spill.add(record)
            key_spill.add((keys, suspicious))

        union = KeyUnion()
        for keys, _flagged in key_spill:
            union.union([key for key in keys if sketch.count(key) >= 2])
        sizes: dict[str, list[int]] = {}
        for keys, flagged in key_spill:
            root = _root_of(keys, union)
            if root is not None:
                size = sizes.setdefault(root, [0, 0])
                size[0] += 1
                size[1] += flagged

        verdicts: dict[str, str] = dict(verdict_source(accounts) or {}) if verdict_source else {}
        key_items = iter(key_spill)
        for record in record_spill:
            keys, _flagged = next(key_items)
            root = _root_of(keys, union)
            size, flagged = sizes.get(root, (1, 0)) if root else (1, 0)
            record.campaign = campaign_id(root) if root and size >= 2 else None
            account = login_of(record)
            stats = accounts.get(account or "")
            facts = SpoolFacts(
                campaign=record.campaign, campaign_size=size, campaign_flagged=flagged,
                account=account, account_verdict=verdicts.get(account or ""),
                trace_available=bool(verdicts),
                account_messages=stats.messages if stats else 0,
                account_flagged=stats.flagged if stats else 0,
            )
            apply_spool_rules(record, settings, facts)
            yield record


def _root_of(keys: list[str], union: KeyUnion) -> str | None:
    for key in keys:
        if key in union.parent:
            return union.find(key)
    return None


def _score_after_enrichment(records: Iterable[QueuedMessage], settings: Settings, full: bool,
                            keep_headers: bool) -> Iterator[QueuedMessage]:
    for record in records:
        body = record.details.pop(_BODY, None)
        note_login(record)
        score_record(record, settings, body=body, full=full)
        if not keep_headers:
            record.headers = []
        yield record


def analyze_records(records: Iterable[QueuedMessage], settings: Settings) -> Iterator[QueuedMessage]:
    """Score records already read (tests, records loaded from JSONL): same rules, same campaigns.

    Records need their `headers` for the header rules.
    """
    def prepared() -> Iterator[QueuedMessage]:
        for record in records:
            prepare_record(record, settings=settings, full=False, roots={}, score=True)
            yield record

    yield from finish_analysis(prepared(), settings)

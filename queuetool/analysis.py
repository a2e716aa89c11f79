"""The analysis pipeline every verb calls: scan + rules + campaigns + spool-wide context.

    for record in analyze("/var/spool/postfix", settings=load_settings(local_domains=["example.com"])):
        print(record.id, record.verdict, record.score, record.campaign)

How it runs (and why it scales with cores while memory stays flat at 10^6 messages):
1. Workers read each batch of units, attribute and score every record there
   (`prepare_record`; with --full they also parse the body), write the scored batch to
   a spill file of its own, and send the parent only a small `BatchSummary`: each
   record's campaign keys, whether it is suspicious, its login, and the batch's
   per-account statistics.
2. The parent counts campaign keys in a fixed-size count-min sketch, merges account
   statistics (sets capped at ACCOUNT_SET_CAP members) and keeps the summaries in a
   compact spill of its own (`SpoolTally`).
3. Keys seen at least twice are joined into campaigns (union-find); the trace verdict of
   every account is decided once.
4. Workers read each spill back, add the spool rules (campaign size, the account's trace
   verdict) and the final verdict, and return the records — or, for `analyze_lines`,
   the records already rendered as output lines, so the parent only writes text. For
   JSON output the first pass already renders each record except its spool-decided
   keys (score, verdict, rules, campaign) and spills that text with the rule hits, not
   the record: less to pickle, and the second pass only renders those four keys.

Attribution: `trace.enrich_record(record, index)` runs in the workers on every record
(headers; and the mail logs' index when logs are given: built once in the parent and
inherited by the workers). `trace.account_verdicts(accounts, logset)` judges the
accounts from this module's `AccountStats`.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

from .config import INFER_SAMPLE, Settings, address_domains, with_inferred_domains
from .model import QueuedMessage, QueueUnit, RuleHit
from .output import RecordRenderer, to_json_line
from .scan import BATCH_SIZE, WorkerPool, progress_bar, read_batch, scan, spools_of, unit_batches
from .score.campaigns import CountMinSketch, KeyUnion, campaign_id, campaign_keys
from .score.content import BodyFacts, body_facts
from .score.engine import apply_spool_rules, is_suspicious, score_record, spool_rule_hits
from .score.rules import SpoolFacts, login_of, note_login
from .spools import MultiSpool, Spool, reader_for

ACCOUNT_SET_CAP = 256       # distinct IPs/HELOs/domains remembered per account
MAX_ACCOUNTS = 100_000      # beyond this, accounts are pooled as "(other accounts)"
OTHER_ACCOUNTS = "(other accounts)"
_KEYS = "_campaign_keys"

RecordRender = Callable[[QueuedMessage], str]


@dataclass
class AccountStats:
    """What the spool says about one SMTP AUTH account (bounded memory).

    The capped sets keep the ACCOUNT_SET_CAP smallest values seen, so they do not
    depend on the order in which workers finish.
    """

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
        for domain in address_domains(record.recipients):
            _add_capped(self.recipient_domains, domain)
        _add_capped(self.client_ips, record.client_ip)
        _add_capped(self.helos, record.helo)
        if record.arrival:
            self._seen(record.arrival, record.arrival)
        self.from_mismatch += any(hit.rule == "sender_not_owned" for hit in record.rules)

    def merge(self, other: "AccountStats") -> None:
        """Add another part's counts (a worker's batch) to these."""
        self.messages += other.messages
        self.flagged += other.flagged
        self.recipients += other.recipients
        self.from_mismatch += other.from_mismatch
        for mine, theirs in ((self.recipient_domains, other.recipient_domains),
                             (self.client_ips, other.client_ips), (self.helos, other.helos)):
            for value in theirs:
                _add_capped(mine, value)
        if other.first_seen:
            self._seen(other.first_seen, other.last_seen or other.first_seen)

    def _seen(self, first: str, last: str) -> None:
        self.first_seen = min(self.first_seen or first, first)
        self.last_seen = max(self.last_seen or last, last)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("recipient_domains", "client_ips", "helos"):
            data[key] = sorted(data[key])[:ACCOUNT_SET_CAP]
        return data


def _add_capped(values: set[str], value: str | None) -> None:
    """Keep the ACCOUNT_SET_CAP smallest values: grow to twice the cap, then trim."""
    if not value or value in values:
        return
    values.add(value)
    if len(values) >= 2 * ACCOUNT_SET_CAP:
        keep = sorted(values)[:ACCOUNT_SET_CAP]
        values.clear()
        values.update(keep)


def trim_account_sets(accounts: dict[str, AccountStats]) -> None:
    """Cut every capped set to exactly the ACCOUNT_SET_CAP smallest values."""
    for stats in accounts.values():
        for values in (stats.recipient_domains, stats.client_ips, stats.helos):
            if len(values) > ACCOUNT_SET_CAP:
                keep = sorted(values)[:ACCOUNT_SET_CAP]
                values.clear()
                values.update(keep)


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
                   roots: dict[str, tuple[str, str]], index: Any = None) -> None:
    """Per-record step run inside scan workers: attribution, body facts, rules, campaign keys."""
    from .trace import enrich_record

    body = _read_body(record, roots) if full else None
    record.details[_KEYS] = campaign_keys(record, body)
    try:
        enrich_record(record, index)
    except Exception as exc:  # noqa: BLE001 - enrichment must never stop a scan
        record.add_error(f"trace enrichment failed: {type(exc).__name__}: {exc}")
    note_login(record)
    score_record(record, settings, body=body, full=full)


def infer_settings(source: str | Path | Spool | MultiSpool, settings: Settings, *,
                   mta: str | None = None, sample: int = INFER_SAMPLE, jobs: int = 1) -> Settings:
    """`settings` with local domains inferred from the first `sample` records when none are set."""
    if settings.our_domains or settings.domains_inferred:
        return settings
    records = itertools.islice(scan(source, mta=mta, keep_headers=True, jobs=jobs), sample)
    return with_inferred_domains(settings, records)


# ---------------------------------------------------------------- the two passes


@dataclass
class RunContext:
    """What every worker needs, given once when the pool starts (inherited under fork)."""

    settings: Settings
    spill_dir: str
    full: bool = False
    keep_headers: bool = False
    roots: dict[str, tuple[str, str]] = field(default_factory=dict)
    index: Any = None                      # trace.LogIndex when logs were given
    render: RecordRender | None = None     # set: second pass returns rendered lines

    @property
    def json_render(self) -> RecordRenderer | None:
        """The renderer when the output is JSON: then batches are spilled as text parts."""
        render = self.render
        return render if isinstance(render, RecordRenderer) and render.renders_json else None

    def spill_path(self, number: int) -> str:
        return os.path.join(self.spill_dir, f"{number:09d}.pickle")


@dataclass
class BatchSummary:
    """What a worker reports of one scored batch: small, so the parent stays fast."""

    number: int
    records: list[tuple[list[str], bool, str | None]]   # per record: campaign keys, suspicious, login
    accounts: dict[str, AccountStats]


def summarize_batch(context: RunContext, number: int, records: list[QueuedMessage]) -> BatchSummary:
    """Spill one batch of prepared records; return its summary (first pass, worker side)."""
    accounts: dict[str, AccountStats] = {}
    rows = []
    for record in records:
        keys = record.details.pop(_KEYS, [])
        login = login_of(record)
        suspicious = is_suspicious(record, context.settings)
        if login:
            stats = accounts.get(login)
            if stats is None:
                stats = accounts[login] = AccountStats(login)
            stats.add(record, suspicious)
        rows.append((keys, suspicious, login))
    render = context.json_render
    if render is not None:
        # JSON output: keep the rendered text and the rule hits, not the records
        spill: Any = [(render.json_parts(record), [(hit.rule, hit.points, hit.why) for hit in record.rules],
                       bool(record.error)) for record in records]
    else:
        spill = records
    with open(context.spill_path(number), "wb") as handle:
        pickle.dump(spill, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return BatchSummary(number, rows, accounts)


def _score_batch(context: RunContext, number: int, mta: str, root: str, label: str,
                 units: list[QueueUnit]) -> BatchSummary:
    process = functools.partial(prepare_record, settings=context.settings, full=context.full,
                                roots=context.roots, index=context.index)
    records = read_batch(mta, root, label, units, context.full, context.keep_headers, process)
    return summarize_batch(context, number, records)


def _finish_batch(context: RunContext, number: int, facts: list[tuple]) -> Any:
    """Second pass, worker side: spool rules and final verdicts on one spilled batch."""
    path = context.spill_path(number)
    with open(path, "rb") as handle:
        spilled: list = pickle.load(handle)
    os.unlink(path)
    if context.json_render is not None:
        return _finish_json_lines(context, spilled, facts)
    records: list[QueuedMessage] = spilled
    for record, fact in zip(records, facts):
        record.campaign = fact[0]
        apply_spool_rules(record, context.settings, SpoolFacts(*fact))
    if context.render is None:
        return records
    return [context.render(record) for record in records], sum(1 for record in records if record.error)


def _finish_json_lines(context: RunContext, spilled: list[tuple], facts: list[tuple]) -> tuple[list[str], int]:
    """_finish_batch for records spilled as JSON text parts (see summarize_batch)."""
    join = RecordRenderer.join_json_parts
    settings = context.settings
    lines = []
    blank = QueuedMessage(mta="", id="")  # what the spool rules see of a record
    for (parts, rules, _error), fact in zip(spilled, facts):
        hits, score, verdict = spool_rule_hits([RuleHit(*hit) for hit in rules], blank, settings, SpoolFacts(*fact))
        if blank.details:  # a spool rule failed: the record's details must say so too
            parts = _with_details(parts, blank.details)
            blank.details = {}
        lines.append(join(parts, score, verdict, hits, fact[0]))
    return lines, sum(1 for _parts, _rules, error in spilled if error)


def _with_details(parts: tuple[str, str], extra: dict[str, list[str]]) -> tuple[str, str]:
    """JSON text parts whose `details` also hold `extra` (lists appended to, as the record path does)."""
    after = json.loads("{" + parts[1])
    for key, values in extra.items():
        after["details"].setdefault(key, []).extend(values)
    return parts[0], to_json_line(after)[1:]


class SpoolTally:
    """Parent side: campaign keys and account statistics of the whole spool, bounded.

    Batch summaries go to a temporary file (one pickle per batch, found again by
    offset), keys into a count-min sketch; `finish` joins campaigns and asks for the
    account verdicts; `facts(number)` gives the SpoolFacts fields of a batch's records.
    """

    def __init__(self, handle: IO[bytes], accounts: dict[str, AccountStats]) -> None:
        self.handle, self.accounts = handle, accounts
        self.sketch = CountMinSketch()
        self.offsets: dict[int, tuple[int, int]] = {}
        self.union = KeyUnion()
        self.sizes: dict[str, list[int]] = {}
        self.verdicts: dict[str, str] = {}

    def add(self, summary: BatchSummary) -> int:
        # a spam batch repeats a few campaign keys: count each distinct key once per batch
        for key, count in collections.Counter(
                key for keys, _suspicious, _login in summary.records for key in keys).items():
            self.sketch.add(key, count)
        for account, stats in summary.accounts.items():
            if account not in self.accounts and len(self.accounts) >= MAX_ACCOUNTS:
                account = OTHER_ACCOUNTS
            mine = self.accounts.get(account)
            if mine is None:
                mine = self.accounts[account] = AccountStats(account)
            mine.merge(stats)
        blob = pickle.dumps(summary.records, protocol=pickle.HIGHEST_PROTOCOL)
        self.handle.seek(0, os.SEEK_END)
        self.offsets[summary.number] = (self.handle.tell(), len(blob))
        self.handle.write(blob)
        return len(summary.records)

    def _rows(self, number: int) -> list[tuple[list[str], bool, str | None]]:
        offset, size = self.offsets[number]
        self.handle.seek(offset)
        return pickle.loads(self.handle.read(size))

    def _all_rows(self) -> Iterator[tuple[list[str], bool, str | None]]:
        for number in sorted(self.offsets):
            yield from self._rows(number)

    def finish(self, verdict_source: Callable[[dict[str, AccountStats]], dict[str, str]] | None) -> None:
        trim_account_sets(self.accounts)
        count, joined = self.sketch.count, self.union.parent
        for keys, _suspicious, _login in self._all_rows():
            # a key already in the union-find was counted twice before: skip the sketch
            self.union.union([key for key in keys if key in joined or count(key) >= 2])
        for keys, suspicious, _login in self._all_rows():
            root = self._root_of(keys)
            if root is not None:
                size = self.sizes.setdefault(root, [0, 0])
                size[0] += 1
                size[1] += suspicious
        self.verdicts = dict(verdict_source(self.accounts) or {}) if verdict_source else {}

    def _root_of(self, keys: list[str]) -> str | None:
        parent = self.union.parent
        for key in keys:
            if key in parent:
                return self.union.find(key)
        return None

    def facts(self, number: int) -> list[tuple]:
        """SpoolFacts fields, in order, for each record of batch `number`."""
        out = []
        trace_available = bool(self.verdicts)
        for keys, _suspicious, login in self._rows(number):
            root = self._root_of(keys)
            size, flagged = self.sizes.get(root, (1, 0)) if root else (1, 0)
            campaign = campaign_id(root) if root and size >= 2 else None
            stats = self.accounts.get(login or "")
            out.append((campaign, size, flagged, login, self.verdicts.get(login or ""),
                        stats.messages if stats else 0, stats.flagged if stats else 0,
                        trace_available))
        return out

    @property
    def batches(self) -> list[int]:
        return sorted(self.offsets)


def _run(batch_tasks: Iterable[tuple], first_pass: Callable[..., BatchSummary], context: RunContext, *,
         jobs: int, ordered: bool, progress: bool,
         account_stats: dict[str, AccountStats] | None,
         verdict_source: Callable[[dict[str, AccountStats]], dict[str, str]] | None) -> Iterator[Any]:
    """Both passes over `batch_tasks` on a pool of `jobs`; yields second-pass results."""
    accounts: dict[str, AccountStats] = {} if account_stats is None else account_stats
    bar = progress_bar(progress)
    with tempfile.TemporaryFile(prefix="queuetool-keys-") as key_file, \
            WorkerPool(jobs, context) as pool:
        tally = SpoolTally(key_file, accounts)
        try:
            # the first pass finishes in any order: the spill numbers keep the order
            for summary in pool.map(first_pass, batch_tasks, ordered=False):
                count = tally.add(summary)
                if bar is not None:
                    bar.update(count)
        finally:
            if bar is not None:
                bar.close()
        tally.finish(verdict_source)
        tasks = ((number, tally.facts(number)) for number in tally.batches)
        yield from pool.map(_finish_batch, tasks, ordered=ordered)


def _prepared_run(source: str | Path | Spool | MultiSpool, *, settings: Settings,
                  logs: Sequence[str | Path], full: bool, jobs: int, ordered: bool, progress: bool,
                  mta: str | None, keep_headers: bool, account_stats: dict[str, AccountStats] | None,
                  logs_below: bool, render: RecordRender | None) -> Iterator[Any]:
    from .trace import _as_index, account_verdicts, with_logs_below

    if logs_below:
        logs = with_logs_below(logs, source)
    spools = spools_of(source, mta)
    settings = infer_settings(spools[0] if len(spools) == 1 else MultiSpool(spools), settings, jobs=jobs)
    logset = None
    if logs:
        from .logs import read_logs

        logset = read_logs(logs)
    with tempfile.TemporaryDirectory(prefix="queuetool-") as spill_dir:
        context = RunContext(
            settings=settings, spill_dir=spill_dir, full=full, keep_headers=keep_headers,
            roots={spool.label: (spool.mta, str(spool.root)) for spool in spools},
            index=_as_index(logset), render=render)
        tasks = ((number, spool.mta, str(spool.root), spool.label, units)
                 for number, (spool, units) in enumerate(unit_batches(spools)))
        yield from _run(tasks, _score_batch, context, jobs=jobs, ordered=ordered, progress=progress,
                        account_stats=account_stats,
                        verdict_source=lambda accounts: account_verdicts(accounts, logset))


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

    `logs` are mail/protocol logs read for attribution (see module docstring).
    `logs_below` adds the logs found inside `source` when it is a copied server tree
    (spools.find_logs), as trace and diagnose do.
    `account_stats`, if given a dict, is filled with per-account statistics.
    """
    for records in _prepared_run(source, settings=settings, logs=logs, full=full, jobs=jobs, ordered=ordered,
                                 progress=progress, mta=mta, keep_headers=keep_headers,
                                 account_stats=account_stats, logs_below=logs_below, render=None):
        yield from records


def analyze_lines(
    source: str | Path | Spool | MultiSpool,
    render: RecordRender,
    *,
    settings: Settings,
    logs: Sequence[str | Path] = (),
    full: bool = False,
    jobs: int = 1,
    ordered: bool = True,
    progress: bool = False,
    mta: str | None = None,
    keep_headers: bool = False,
    logs_below: bool = False,
) -> Iterator[tuple[list[str], int]]:
    """`analyze`, with each record rendered to one output line by the workers.

    Yields (lines, unreadable) per batch: the lines of up to BATCH_SIZE records, and
    how many of those records carry an `error`. `render` must be picklable (a
    top-level function or a functools.partial of one), e.g. output.record_renderer.
    """
    yield from _prepared_run(source, settings=settings, logs=logs, full=full, jobs=jobs, ordered=ordered,
                             progress=progress, mta=mta, keep_headers=keep_headers, account_stats=None,
                             logs_below=logs_below, render=render)


def _prepare_in_process(context: RunContext, number: int, records: list[QueuedMessage]) -> BatchSummary:
    for record in records:
        prepare_record(record, settings=context.settings, full=False, roots={})
    return summarize_batch(context, number, records)


def analyze_records(records: Iterable[QueuedMessage], settings: Settings) -> Iterator[QueuedMessage]:
    """Score records already read (tests, records loaded from JSONL): same rules, same campaigns.

    Records need their `headers` for the header rules.
    """
    iterator = iter(records)
    batches = iter(lambda: list(itertools.islice(iterator, BATCH_SIZE)), [])
    with tempfile.TemporaryDirectory(prefix="queuetool-") as spill_dir:
        context = RunContext(settings=settings, spill_dir=spill_dir, keep_headers=True)
        tasks = enumerate(batches)
        for done in _run(tasks, _prepare_in_process, context, jobs=1, ordered=True, progress=False,
                         account_stats=None, verdict_source=None):
            yield from done

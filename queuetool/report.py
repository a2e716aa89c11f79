"""The incident report: one self-contained HTML file a responder hands to their manager.

No network, no CDN, no JavaScript: inline CSS and server-drawn SVG charts, so the file
opens anywhere (even from a USB stick on an air-gapped workstation) and shows the same
thing in every browser. `build_report` gathers the numbers (one analysis pass, plus
trace and diagnose when available); `render_html` only formats them.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import html
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .analysis import analyze
from .config import Settings, address_domain
from .diagnose import diagnose as diagnose_spool
from .model import QueuedMessage
from .trace import trace as trace_accounts

TOP_DOMAINS = 15
TOP_CAMPAIGNS = 20
TIMELINE_SERIES = 6
PALETTE = ("#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d")


@dataclass
class ReportData:
    """Everything the report shows; JSON-safe (see `to_dict`)."""

    source: str
    generated: str
    messages: int = 0
    unreadable: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)
    by_queue: dict[str, int] = field(default_factory=dict)
    by_mta: dict[str, int] = field(default_factory=dict)
    timeline_unit: str = "hour"
    timeline: dict[str, dict[str, int]] = field(default_factory=dict)  # series -> bucket -> count
    top_domains: list[tuple[str, int]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    selectors: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _series_name(record: QueuedMessage) -> str:
    if record.auth_user:
        return record.auth_user
    if record.sender == "":
        return "(null sender)"
    return "(no login)"


def _bucket(arrival: str | None, unit: str) -> str | None:
    """The time bucket of an ISO-8601 UTC arrival: minute, hour or day."""
    if not arrival or len(arrival) < 16:
        return None
    return {"minute": arrival[:16] + "Z", "hour": arrival[:13] + ":00Z"}.get(unit, arrival[:10])


def build_report(
    source: str | Path,
    *,
    settings: Settings,
    logs: Sequence[str | Path] = (),
    jobs: int = 1,
    progress: bool = False,
    mta: str | None = None,
    logs_below: bool = True,
) -> ReportData:
    """Gather the report's numbers: one streaming analysis pass, then trace and diagnose."""
    data = ReportData(source=str(source), generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    series_totals: collections.Counter[str] = collections.Counter()
    per_bucket: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    domains: collections.Counter[str] = collections.Counter()
    campaigns: dict[str, dict[str, Any]] = {}
    first = last = None
    verdicts: collections.Counter[str] = collections.Counter()
    queues: collections.Counter[str] = collections.Counter()
    mtas: collections.Counter[str] = collections.Counter()
    for record in analyze(source, settings=settings, logs=logs, jobs=jobs, progress=progress, mta=mta,
                          ordered=False, logs_below=logs_below):
        data.messages += 1
        data.unreadable += bool(record.error)
        verdicts[record.verdict or "unscored"] += 1
        queues[f"{record.mta}:{record.queue}"] += 1
        mtas[record.mta] += 1
        name = _series_name(record)
        series_totals[name] += 1
        minute = _bucket(record.arrival, "minute")
        if minute:
            per_bucket[minute][name] += 1
            first = minute if first is None or minute < first else first
            last = minute if last is None or minute > last else last
        for rcpt in record.recipients:
            domain = address_domain(rcpt)
            if domain:
                domains[domain] += 1
        if record.campaign:
            entry = campaigns.setdefault(record.campaign, {
                "campaign": record.campaign, "messages": 0, "flagged": 0, "sample_subject": record.subject,
                "first_seen": record.arrival, "last_seen": record.arrival, "accounts": collections.Counter(),
                "verdicts": collections.Counter()})
            entry["messages"] += 1
            entry["flagged"] += record.verdict not in (None, "clean")
            entry["verdicts"][record.verdict or "unscored"] += 1
            if record.auth_user:
                entry["accounts"][record.auth_user] += 1
            if record.arrival:
                entry["first_seen"] = min(filter(None, [entry["first_seen"], record.arrival]))
                entry["last_seen"] = max(filter(None, [entry["last_seen"], record.arrival]))
    data.by_verdict = dict(verdicts.most_common())
    data.by_queue = dict(queues.most_common())
    data.by_mta = dict(mtas.most_common())
    data.top_domains = domains.most_common(TOP_DOMAINS)
    data.timeline_unit, data.timeline = _timeline(per_bucket, series_totals, first, last)
    ranked = sorted(campaigns.values(), key=lambda c: (-c["flagged"], -c["messages"], c["campaign"]))
    for entry in ranked[:TOP_CAMPAIGNS]:
        entry["accounts"] = [a for a, _ in entry["accounts"].most_common(5)]
        entry["verdict"] = entry.pop("verdicts").most_common(1)[0][0]
        data.campaigns.append(entry)

    try:
        traced = trace_accounts(source, logs=list(logs), settings=settings, mta=mta, logs_below=logs_below)
        data.accounts = [entry.to_dict() for entry in traced.accounts]
    except Exception as exc:  # noqa: BLE001 - the report still shows everything else
        data.notes.append(f"trace failed: {type(exc).__name__}: {exc}")
    try:
        diagnosed = diagnose_spool(source, logs=list(logs), settings=settings, mta=mta, logs_below=logs_below)
        data.findings = [finding.to_dict() for finding in diagnosed.findings]
    except Exception as exc:  # noqa: BLE001
        data.notes.append(f"diagnose failed: {type(exc).__name__}: {exc}")
    if settings.domains_inferred or not settings.local_domains:
        data.notes.append("verdicts rest on local domains inferred from the spool; give --local-domain "
                          "to be sure" + (f" ({settings.inference_evidence})" if settings.inference_evidence else ""))
    data.selectors = _selectors(str(source), data)
    return data


def _timeline(per_bucket: dict[str, collections.Counter[str]], totals: collections.Counter[str],
              first: str | None, last: str | None) -> tuple[str, dict[str, dict[str, int]]]:
    """Counts per sender series (top accounts, the rest pooled) per minute, hour or day.

    Per-minute counts are bounded by the spool's time span; they are rolled up to hours
    for spans over three hours and to days beyond four days.
    """
    if first is None or last is None:
        return "hour", {}
    span = dt.datetime.strptime(last, "%Y-%m-%dT%H:%MZ") - dt.datetime.strptime(first, "%Y-%m-%dT%H:%MZ")
    unit = "minute" if span <= dt.timedelta(hours=3) else "hour" if span <= dt.timedelta(days=4) else "day"
    keep = [name for name, _ in totals.most_common(TIMELINE_SERIES)]
    series: dict[str, dict[str, int]] = {name: {} for name in keep}
    for minute, counts in per_bucket.items():
        bucket = _bucket(minute[:16], unit) if unit != "minute" else minute
        for name, count in counts.items():
            target = name if name in keep else "(others)"
            series.setdefault(target, {})
            series[target][bucket] = series[target].get(bucket, 0) + count
    return unit, series


def _selectors(source: str, data: ReportData) -> list[dict[str, str]]:
    spool = shlex.quote(source)
    qdir = "/var/tmp/queuetool-quarantine"
    out = []
    for account in data.accounts:
        if account.get("verdict") in ("compromised", "suspicious") and account.get("account"):
            name = str(account["account"])
            if name.startswith("client:") or name.startswith("("):
                continue
            out.append({"why": f"all mail sent by {account['verdict']} account {name}",
                        "command": f"queuetool quarantine {spool} --to {qdir} --auth-user {shlex.quote(name)}"})
    for campaign in data.campaigns:
        if campaign["flagged"]:
            out.append({"why": f"campaign of {campaign['messages']} messages, e.g. \"{campaign['sample_subject']}\"",
                        "command": f"queuetool quarantine {spool} --to {qdir} --campaign {campaign['campaign']}"})
    for verdict in ("relay", "backscatter", "spam"):
        if data.by_verdict.get(verdict):
            out.append({"why": f"every message with verdict {verdict} ({data.by_verdict[verdict]})",
                        "command": f"queuetool quarantine {spool} --to {qdir} --verdict {verdict}"})
    return out


# ------------------------------------------------------------------ rendering
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.5em 0;overflow-wrap:anywhere} th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
td ul{margin:0;padding-left:1.1em} .cards{display:flex;flex-wrap:wrap;gap:.8em} .card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.6em} .sev-critical,.v-compromised,.v-spam{color:#c0392b;font-weight:600}
.sev-high,.v-relay,.v-suspicious{color:#d35400;font-weight:600} .v-backscatter{color:#8e44ad} code{background:#f6f6f6;padding:1px 4px}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto} .muted{color:#777} svg text{font:11px system-ui,sans-serif}
"""


def _e(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(str(v) for v in value[:12]) + (f" (+{len(value) - 12})" if len(value) > 12 else ""))
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (), table_id: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            klass = ' class="n"' if i in numeric else ""
            if isinstance(cell, tuple) and len(cell) == 2 and cell[0] == "html":
                cells.append(f"<td{klass}>{cell[1]}</td>")
            else:
                cells.append(f"<td{klass}>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def svg_bars(items: Sequence[tuple[str, int]], title: str, width: int = 520, color: str = "#2980b9") -> str:
    """Horizontal bar chart as inline SVG."""
    if not items:
        return '<p class="muted">nothing to chart</p>'
    bar_h, label_w = 18, 170
    height = bar_h * len(items) + 10
    peak = max(count for _, count in items) or 1
    parts = [f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, count) in enumerate(items):
        y = 5 + i * bar_h
        w = max(1, int((width - label_w - 50) * count / peak))
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{html.escape(str(label)[:28])}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{w}" height="{bar_h - 5}" fill="{color}"/>'
                     f'<text x="{label_w + w + 4}" y="{y + 13}">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_timeline(series: dict[str, dict[str, int]], unit: str, width: int = 1000, height: int = 260) -> str:
    """Messages over time, one line per sender series, as inline SVG."""
    buckets = sorted({b for values in series.values() for b in values})
    if not buckets:
        return '<p class="muted">no arrival times</p>'
    left, bottom, top, right = 40, 40, 10, 170
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(v for values in series.values() for v in values.values()) or 1
    step = plot_w / max(len(buckets) - 1, 1)
    index = {b: i for i, b in enumerate(buckets)}
    parts = [f'<svg role="img" aria-label="messages per {unit} per account" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>',
             f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
             f'<text x="{left}" y="{height - 8}">{html.escape(buckets[0])}</text>',
             f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end">{html.escape(buckets[-1])} (UTC)</text>']
    for n, (name, values) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        points = " ".join(
            f"{left + index[b] * step:.1f},{top + plot_h - plot_h * values.get(b, 0) / peak:.1f}" for b in buckets)
        if len(buckets) == 1:
            x = left + plot_w / 2
            y = top + plot_h - plot_h * values.get(buckets[0], 0) / peak
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"/>')
        else:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        ly = top + 14 + n * 16
        parts.append(f'<rect x="{width - right + 10}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{width - right + 24}" y="{ly}">{html.escape(name[:22])} ({sum(values.values())})</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document."""
    cards = "".join(
        f'<div class="card"><b class="v-{html.escape(k)}">{v}</b>{html.escape(k)}</div>'
        for k, v in [("messages", data.messages), *data.by_verdict.items(), ("unreadable", data.unreadable)])
    accounts_rows = [
        (a.get("account") or f"{a.get('kind') or 'client'}:{a.get('client')}", ("html", f'<span class="v-{_e(a.get("verdict"))}">{_e(a.get("verdict"))}</span>'),
         a.get("messages"), a.get("flagged"), a.get("recipient_domains"), a.get("client_ips"),
         a.get("failed_logins"), ("html", _bullets(a.get("evidence"))), ("html", _bullets(a.get("remedy"))))
        for a in data.accounts]
    findings_rows = [
        (f.get("id"), ("html", f'<span class="sev-{_e(f.get("severity"))}">{_e(f.get("severity"))}</span>'),
         f.get("title"), _evidence_text(f.get("evidence")), f.get("cause"), f.get("remedy"), f.get("references"))
        for f in data.findings]
    campaign_rows = [(c["campaign"], c["messages"], c["flagged"], c["verdict"], c["sample_subject"], c["accounts"],
                      c["first_seen"], c["last_seen"]) for c in data.campaigns]
    selectors = "".join(f"<p>{html.escape(s['why'])}:</p><pre>{html.escape(s['command'])}</pre>"
                        for s in data.selectors) or '<p class="muted">nothing flagged</p>'
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>queuetool incident report: {html.escape(data.source)}</title>
<style>{CSS}</style></head>
<body>
<h1>Mail queue incident report</h1>
<p class="muted">Spool <code>{html.escape(data.source)}</code>, generated {html.escape(data.generated)} (times in UTC, offset +00:00) by queuetool.</p>
<h2>Summary</h2><div class="cards" id="summary">{cards}</div>
{_table(["queue", "messages"], data.by_queue.items(), numeric=[1], table_id="queues")}
<h2>Messages over time per account (per {html.escape(data.timeline_unit)}, UTC)</h2>
<div id="timeline">{svg_timeline(data.timeline, data.timeline_unit)}</div>
<h2>Accounts</h2>
{_table(["account", "verdict", "messages", "flagged", "recipient domains", "client IPs", "failed logins", "evidence", "remedy"], accounts_rows, numeric=[2, 3, 6], table_id="accounts") if accounts_rows else '<p class="muted">no account data</p>'}
<h2>Top recipient domains</h2>
<div id="domains">{svg_bars(data.top_domains, "top recipient domains")}</div>
<h2>Campaigns</h2>
{_table(["campaign", "messages", "flagged", "verdict", "sample subject", "accounts", "first seen", "last seen"], campaign_rows, numeric=[1, 2], table_id="campaigns") if campaign_rows else '<p class="muted">no campaigns</p>'}
<h2>Findings</h2>
{_table(["id", "severity", "title", "evidence", "cause", "remedy", "references"], findings_rows, table_id="findings") if findings_rows else '<p class="muted">no findings</p>'}
<h2>Clean-up: ready-to-paste selectors</h2>
<p>Each command is a dry run that prints its plan; add <code>--apply</code> to move the messages into the quarantine (nothing is deleted; <code>queuetool restore</code> puts them back).</p>
<div id="selectors">{selectors}</div>
{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}
</body></html>
"""


def _bullets(items: Any) -> str:
    if not items:
        return "-"
    if isinstance(items, str):
        return html.escape(items)
    return "<ul>" + "".join(f"<li>{html.escape(str(item))}</li>" for item in items) + "</ul>"


def _evidence_text(evidence: Any) -> str:
    if isinstance(evidence, dict):
        return "; ".join(f"{k}: {v}" for k, v in evidence.items())
    if isinstance(evidence, list):
        return "; ".join(str(e) for e in evidence[:6])
    return "" if evidence is None else str(evidence)


def write_report(source: str | Path, html_path: str | Path, *, settings: Settings, logs: Sequence[str | Path] = (),
                 jobs: int = 1, progress: bool = False, mta: str | None = None,
                 logs_below: bool = True) -> ReportData:
    """Build the report for `source` and write it to `html_path`; returns the data."""
    data = build_report(source, settings=settings, logs=logs, jobs=jobs, progress=progress, mta=mta,
                        logs_below=logs_below)
    Path(html_path).write_text(render_html(data), encoding="utf-8")
    return data

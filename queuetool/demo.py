"""The demo incident scan: what `python3 dev.py demo` prints for the bundled corpora.

For each corpus (corpora/<name>/spool, with the logs the MTA wrote in
corpora/<name>/logs), it runs what a responder runs first: the scored scan, then trace
(who sent it). Every number comes from the library calls a user would make.
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import IO

from .analysis import analyze
from .config import load_settings
from .scan import default_jobs
from .trace import trace

DEMO_DOMAINS = ["example.com"]  # the corpora's server domain (see CONTRIBUTING.md)


def demo_incidents(corpora: Path) -> list[tuple[str, Path, list[Path]]]:
    """(name, spool, logs) for every corpus below `corpora`; a bare spool counts too."""
    found = []
    for spool in sorted(Path(corpora).glob("*/spool")):
        logs_dir = spool.parent / "logs"
        logs = sorted(p for p in logs_dir.rglob("*") if p.is_file() and "log" in p.name.lower()) \
            if logs_dir.is_dir() else []
        found.append((spool.parent.name, spool, logs))
    if not found:
        found.append((Path(corpora).name, Path(corpora), []))
    return found


def run_demo(corpora: Path, out: IO[str], jobs: int | None = None) -> None:
    """Scan, score and trace every corpus below `corpora`; print what matters first."""
    settings = load_settings(local_domains=DEMO_DOMAINS)
    jobs = jobs or default_jobs()
    incidents = demo_incidents(corpora)
    out.write(f"queuetool demo: {len(incidents)} incident spool(s) below {corpora} "
              f"(local domain {', '.join(DEMO_DOMAINS)}; times UTC)\n")
    for name, spool, logs in incidents:
        verdicts: collections.Counter[str] = collections.Counter()
        queues: collections.Counter[str] = collections.Counter()
        mtas: collections.Counter[str] = collections.Counter()
        campaigns: collections.Counter[str] = collections.Counter()
        total = errors = 0
        for record in analyze(spool, settings=settings, logs=logs, jobs=jobs, ordered=False, logs_below=True):
            total += 1
            errors += bool(record.error)
            verdicts[record.verdict or "unscored"] += 1
            queues[record.queue or "?"] += 1
            mtas[record.mta] += 1
            if record.campaign and record.verdict not in (None, "clean"):
                campaigns[record.campaign] += 1
        out.write(f"\n== {name} ({', '.join(mtas)}): {total} queued message(s), {errors} unreadable\n")
        out.write(f"   verdicts:  {_top(verdicts, 5)}\n")
        out.write(f"   queues:    {_top(queues, 6)}\n")
        out.write(f"   campaigns: {len(campaigns)} flagged; largest {_top(campaigns, 2)}\n")
        result = trace(spool, logs=logs, settings=settings, jobs=jobs)
        flagged = [a for a in result.accounts if a.verdict != "normal"][:4]
        for entry in flagged:
            who = entry.account or f"{entry.kind} {entry.client}"
            out.write(f"   {entry.verdict:11} {who}: {entry.messages} message(s), {entry.flagged} flagged, "
                      f"{len(entry.client_ips)} client IP(s), {entry.failed_logins} failed login(s)\n")
        if not flagged:
            out.write("   no suspicious account or client\n")
    out.write("\nNext: queuetool report <spool> --html report.html; queuetool quarantine <spool> --to QDIR "
              "--auth-user <account>  (dry run; add --apply)\n")


def _top(counter: collections.Counter, n: int = 4) -> str:
    if not counter:
        return "-"
    return ", ".join(f"{key} {count}" for key, count in counter.most_common(n))

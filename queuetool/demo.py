"""The demo incident scan: what `python3 dev.py demo` prints for the bundled corpora."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import IO

from .scan import default_jobs, scan, spools_of


def run_demo(corpora: Path, out: IO[str]) -> None:
    """Scan every spool below `corpora` and print, per spool, what a responder looks at first."""
    spools = spools_of(corpora)
    out.write(f"queuetool demo: {len(spools)} spool(s) found below {corpora}\n")
    for spool in spools:
        queues: collections.Counter[str] = collections.Counter()
        accounts: collections.Counter[str] = collections.Counter()
        clients: collections.Counter[str] = collections.Counter()
        verdicts: collections.Counter[str] = collections.Counter()
        total = errors = bounces = 0
        for record in scan(spool, jobs=default_jobs()):
            total += 1
            queues[record.queue or "?"] += 1
            verdicts[record.verdict or "unscored"] += 1
            if record.auth_user:
                accounts[record.auth_user] += 1
            if record.client_ip:
                clients[record.client_ip] += 1
            errors += bool(record.error)
            bounces += record.sender == ""
        out.write(f"\n== {spool.label} ({spool.mta}): {total} message(s), {errors} unreadable, "
                  f"{bounces} null-sender\n")
        out.write("   queues:   " + _top(queues) + "\n")
        out.write("   verdicts: " + _top(verdicts) + "\n")
        out.write("   accounts: " + _top(accounts) + "\n")
        out.write("   clients:  " + _top(clients) + "\n")


def _top(counter: collections.Counter, n: int = 4) -> str:
    if not counter:
        return "-"
    return ", ".join(f"{key} {count}" for key, count in counter.most_common(n))

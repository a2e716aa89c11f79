"""Operations benchmark: purge a campaign from a live Postfix while more mail arrives.

Starts the test suite's private Postfix (tests/ops/private_postfix.py: its own config and
queue, SMTP on 127.0.0.1 in a network namespace, every transport deferred; needs root
and the Debian package), queues `--queued` messages (two thirds of them the campaign),
then runs `queuetool purge --apply` while `--arriving` more are sent. Prints the time,
the outcomes and whether anything unselected was taken; asserts nothing.

    sudo python benchmarks/live_purge.py [--queued 600] [--arriving 1500] [--jobs 2]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ops")]

from ops.private_postfix import PrivatePostfix, missing_requirements  # noqa: E402
from test_live_postfix import SELECT_CAMPAIGN, legit, spam, wait_until_deferred  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=600)
    parser.add_argument("--arriving", type=int, default=1500)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    why = missing_requirements()
    if why:
        print(why, file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="queuetool-live-bench-"))
    os.chmod(base, 0o755)
    postfix = PrivatePostfix(base / "pf")
    postfix.start()
    try:
        first = [spam(i) if i % 3 else legit(i) for i in range(args.queued)]
        ids = PrivatePostfix.queue_ids(postfix.inject(first))
        wait_until_deferred(postfix, set(ids), timeout=600)
        more = [spam(100_000 + i) if i % 2 else legit(100_000 + i) for i in range(args.arriving)]
        arriving = postfix.inject(more)
        time.sleep(0.5)
        started = time.monotonic()
        purge = subprocess.run([sys.executable, "-m", "queuetool", "purge", str(postfix.queue),
                                "--mta-config", str(postfix.config), "--to", str(base / "q"),
                                "--where", SELECT_CAMPAIGN, "--apply", "--format", "jsonl", "-j", str(args.jobs)],
                               capture_output=True, text=True, cwd=ROOT)
        seconds = time.monotonic() - started
        later = PrivatePostfix.queue_ids(arriving)
        outcomes = [json.loads(line) for line in purge.stdout.splitlines()]
        campaign = {q for q, m in zip(ids + later, first + more) if m["sender"].startswith("forged")}
        purged = {o["id"] for o in outcomes if o["status"] == "purged"}
        print(f"purge exit {purge.returncode} in {seconds:.1f} s: "
              f"{dict(collections.Counter(o['status'] for o in outcomes))}, "
              f"{len(purged) / seconds:.0f} units/s")
        print(f"queued campaign left behind: {len({q for q in ids if q in campaign} - purged)}; "
              f"unselected taken: {len(purged - campaign)}; arriving campaign taken: {len(purged & campaign) - len(purged & set(ids))}")
        if purge.stderr.strip():
            print(purge.stderr.strip()[-600:])
    finally:
        postfix.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Verdict accuracy on every corpus with a manifest: precision/recall of `verdict != clean`
and per-kind accuracy (run: .venv/bin/python benchmarks/accuracy.py [--full] [--infer] [--logs]).

Expected verdict per manifest kind: legit -> clean, spam -> spam, relay -> relay,
backscatter -> backscatter; malformed mail is judged by its scenario (a malformed
open-relay message is still relay, a malformed inbound one is clean). Units that are
unreadable and carry no envelope or header facts (e.g. a Sendmail data file without
its control file) are counted apart, not judged.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from queuetool.analysis import analyze  # noqa: E402
from queuetool.config import load_settings  # noqa: E402
from queuetool.spools import SpoolError  # noqa: E402

CORPORA = ROOT / "corpora"
REAL_MTA_CORPORA = ("postfix", "exim", "sendmail")
STORY_LOCAL_DOMAINS = ("example.com",)
SCENARIO_VERDICT = {"open-relay": "relay", "compromised-account": "spam", "web-script": "spam"}


def expected_verdict(entry: dict[str, Any]) -> str:
    kind = entry.get("kind")
    if kind == "legit":
        return "clean"
    if kind in ("spam", "relay", "backscatter"):
        return kind
    scenario = entry.get("scenario") or ""
    if scenario == "bounce":
        return "backscatter"
    return SCENARIO_VERDICT.get(scenario, "clean")


def corpora_with_manifest() -> list[str]:
    return sorted(p.parent.name for p in CORPORA.glob("*/manifest.jsonl") if (p.parent / "spool").is_dir())


def corpus_logs(name: str) -> list[Path]:
    """The corpus's logs/ directory plus logs found inside its spool (a copied server tree)."""
    found = [CORPORA / name / "logs"] if (CORPORA / name / "logs").is_dir() else []
    try:
        from queuetool.trace import found_logs
    except ImportError:
        return found
    return found + [p for p in found_logs(CORPORA / name / "spool") if p not in found]


def evaluate_corpus(name: str, *, full: bool = False, infer: bool = False, logs: bool = False) -> dict[str, Any]:
    """Compare analyze() verdicts on corpora/<name>/spool with its manifest."""
    manifest = [json.loads(line) for line in (CORPORA / name / "manifest.jsonl").read_text().splitlines()
                if line.strip()]
    settings = load_settings(local_domains=() if infer else STORY_LOCAL_DOMAINS)
    log_paths = corpus_logs(name) if logs else []
    verdicts = {r.id: r for r in analyze(CORPORA / name / "spool", settings=settings, full=full, logs=log_paths)}
    tp = fp = fn = tn = missing = unreadable = 0
    per_kind: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    wrong = []
    for entry in manifest:
        record = verdicts.get(entry["id"])
        if record is None:
            missing += 1
            continue
        if record.error and not record.sender and not record.recipients and not record.header_from:
            unreadable += 1  # nothing to judge (e.g. a data file without its control file)
            continue
        want = expected_verdict(entry)
        got = record.verdict or "clean"
        per_kind[entry["kind"]][1] += 1
        if got == want:
            per_kind[entry["kind"]][0] += 1
        else:
            wrong.append({"id": entry["id"], "kind": entry["kind"], "scenario": entry.get("scenario"),
                          "want": want, "got": got, "score": record.score,
                          "rules": [f"{h.rule}{h.points:+g}" for h in record.rules if h.points]})
        flagged, should = got != "clean", want != "clean"
        tp += flagged and should
        fp += flagged and not should
        fn += should and not flagged
        tn += not flagged and not should
    return {
        "corpus": name, "messages": len(manifest), "missing": missing, "unreadable": unreadable,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "per_kind": {kind: {"correct": c, "total": t, "accuracy": c / t} for kind, (c, t) in sorted(per_kind.items())},
        "wrong": wrong,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="*", help="corpus names (default: every corpus with a manifest)")
    parser.add_argument("--full", action="store_true", help="run the body rules too")
    parser.add_argument("--infer", action="store_true", help="infer local domains instead of example.com")
    parser.add_argument("--logs", action="store_true", help="use the corpus's logs (trace enrichment)")
    parser.add_argument("--verbose", "-v", action="store_true", help="list every wrong verdict")
    args = parser.parse_args(argv)
    print(f"{'corpus':14} {'msgs':>5} {'prec':>6} {'recall':>6}  per-kind accuracy (correct/total)")
    for name in args.corpora or corpora_with_manifest():
        try:
            result = evaluate_corpus(name, full=args.full, infer=args.infer, logs=args.logs)
        except (SpoolError, OSError) as exc:
            print(f"{name:14} not readable yet: {exc}")
            continue
        kinds = "  ".join(f"{k} {v['accuracy']:.2f} ({v['correct']}/{v['total']})"
                          for k, v in result["per_kind"].items())
        missing = f"  [{result['missing']} manifest ids not in the spool]" if result["missing"] else ""
        if result["unreadable"]:
            missing += f"  [{result['unreadable']} unreadable, not judged]"
        print(f"{name:14} {result['messages']:5d} {result['precision']:6.3f} {result['recall']:6.3f}  {kinds}{missing}")
        if args.verbose:
            for item in result["wrong"]:
                print("    " + json.dumps(item))
    return 0


if __name__ == "__main__":
    sys.exit(main())

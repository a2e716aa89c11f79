"""Test helpers for the committed corpora (import as `from corpus import ...`).

Layout of each corpus (see corpora/README.md):
    corpora/<name>/spool/          the spool tree exactly as the MTA left it
    corpora/<name>/files.json      {"<path relative to spool/>": {"mtime": float, "mode": int}}
    corpora/<name>/manifest.jsonl  one line per message: what it is (ground truth)
    corpora/<name>/listing.*       the MTA's own listing, saved at generation time
    corpora/<name>/logs/           logs the MTA wrote while the corpus was made
git keeps neither mtimes nor modes (only the user-execute bit), so tests that need
them work on a copy with both restored.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

CORPORA = Path(__file__).resolve().parents[1] / "corpora"


def corpus_dir(name: str) -> Path:
    return CORPORA / name


def load_manifest(name: str) -> list[dict]:
    path = CORPORA / name / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def restore_file_metadata(spool: Path, files_json: Path) -> int:
    """Set mode and mtime of every file listed in files.json; returns how many."""
    meta = json.loads(files_json.read_text(encoding="utf-8"))
    count = 0
    for rel, info in meta.items():
        path = spool / rel
        if not path.exists() or path.is_symlink():
            continue
        if "mode" in info:
            os.chmod(path, info["mode"] & 0o7777)
        if "mtime" in info:
            os.utime(path, (info.get("atime", info["mtime"]), info["mtime"]))
        count += 1
    return count


def copy_corpus(name: str, dest: Path) -> Path:
    """Copy corpora/<name>/spool to dest/<name> with modes and mtimes restored."""
    src = CORPORA / name / "spool"
    target = dest / name
    shutil.copytree(src, target, symlinks=True)
    files_json = CORPORA / name / "files.json"
    if files_json.exists():
        restore_file_metadata(target, files_json)
    return target

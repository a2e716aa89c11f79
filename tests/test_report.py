"""The HTML report renders in a real headless Chromium (Debian package) and holds the numbers.

Chromium is installed by scripts/install-test-packages.sh (python3 dev.py test, as root).
"""
from __future__ import annotations

import collections
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

import queuetool

from queuetool.cli import main
from queuetool.config import load_settings
from queuetool.report import PALETTE, build_report, render_html, svg_bars

from corpus import CORPORA

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--window-size=1200,2400"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium is missing: run scripts/install-test-packages.sh as root (python3 dev.py test does)")
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                           "--v=0", *args], capture_output=True, text=True, timeout=120)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG into rows of raw pixel bytes (enough for screenshots)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


def colours(png: bytes) -> set[tuple[int, int, int]]:
    width, bpp, rows = png_pixels(png)
    return {tuple(row[x * bpp:x * bpp + 3]) for row in rows for x in range(0, width, 2)}


@pytest.fixture(scope="module")
def postfix_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    spool = CORPORA / "postfix" / "spool"
    if not spool.exists():
        pytest.fail("corpora/postfix/spool is missing")
    html_path = tmp / "report.html"
    result = CliRunner().invoke(main, ["report", str(spool), "--html", str(html_path), "--local-domain", "example.com",
                                       "--jobs", "1"])
    assert result.exit_code in (0, 3), result.output
    data = build_report(spool, settings=load_settings(local_domains=["example.com"]))
    return tmp, html_path, data


def test_report_is_self_contained(postfix_report):
    _, html_path, _ = postfix_report
    text = html_path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the report must not load anything"
    assert "<script" not in text.lower()
    assert "<svg" in text


def test_report_renders_in_chromium_without_errors(postfix_report, tmp_path):
    _, html_path, data = postfix_report
    shot = tmp_path / "shot.png"
    result = run_chromium(tmp_path, f"--screenshot={shot}", html_path.as_uri())
    assert shot.exists(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line
               or "net::ERR" in line]
    assert console == []
    seen = colours(shot.read_bytes())
    assert len(seen) > 20, "screenshot is blank"
    chart_colour = tuple(int(PALETTE[0][i:i + 2], 16) for i in (1, 3, 5))
    assert chart_colour in seen, "the timeline chart did not render"


def test_report_tables_hold_the_corpus_numbers(postfix_report, tmp_path):
    _, html_path, data = postfix_report
    dom = run_chromium(tmp_path, "--dump-dom", html_path.as_uri()).stdout
    summary = re.search(r'id="summary">(.*?)</div></div>|id="summary">(.*?)<table', dom, re.S)
    assert summary
    assert f"<b class=\"v-messages\">{data.messages}</b>" in dom
    scanned = list(queuetool.scan(CORPORA / "postfix" / "spool"))
    listing = (CORPORA / "postfix" / "listing.jsonl").read_text().splitlines()
    assert data.messages == len(scanned) >= len([line for line in listing if line.strip()])
    assert data.by_queue == dict(collections.Counter(f"postfix:{r.queue}" for r in scanned))
    for verdict, count in data.by_verdict.items():
        assert f'<b class="v-{verdict}">{count}</b>' in dom
    queues = re.search(r'<table id="queues">(.*?)</table>', dom, re.S).group(1)
    for queue, count in data.by_queue.items():
        assert re.search(rf"<td>{re.escape(queue)}</td><td class=\"n\">{count}</td>", queues)


def test_svg_bars_scale_to_the_largest():
    svg = svg_bars([("a.example", 10), ("b.example", 5)], "t", width=400)
    widths = [int(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="(\d+)"', svg)]
    assert widths[0] == 2 * widths[1]


def test_render_escapes_hostile_subjects():
    from queuetool.report import ReportData

    data = ReportData(source="x", generated="now", campaigns=[{
        "campaign": "c1", "messages": 2, "flagged": 2, "verdict": "spam", "sample_subject": "<script>alert(1)</script>",
        "accounts": [], "first_seen": None, "last_seen": None}])
    page = render_html(data)
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page

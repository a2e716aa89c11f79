"""The scan engine and the Spool interface, on a generated .eml tree."""
from __future__ import annotations

import json

from click.testing import CliRunner

import queuetool
from queuetool.cli import main
from queuetool.model import RECORD_KEYS


def make_tree(root, n=300, bad=(7, 150)):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = root / f"d{i % 5}"
        sub.mkdir(exist_ok=True)
        if i in bad:
            (sub / f"m{i:04d}.eml").write_bytes(b"\x00\xff garbage without headers")
        else:
            (sub / f"m{i:04d}.eml").write_bytes(
                f"From: s{i}@example.org\r\nSubject: message {i}\r\nMessage-ID: <{i}@x>\r\n\r\nbody {i}\r\n".encode()
            )
    return root


def test_parallel_scan_equals_serial_and_keeps_order(tmp_path):
    root = make_tree(tmp_path / "q")
    serial = [r.to_dict() for r in queuetool.scan(root, jobs=1)]
    parallel = [r.to_dict() for r in queuetool.scan(root, jobs=2)]
    assert len(serial) == 300
    assert serial == parallel
    unordered = [r.to_dict() for r in queuetool.scan(root, jobs=2, ordered=False)]
    assert sorted(map(json.dumps, unordered)) == sorted(map(json.dumps, serial))


def test_bad_units_become_error_records_and_scan_goes_on(tmp_path):
    root = make_tree(tmp_path / "q")
    records = list(queuetool.scan(root))
    errors = [r.id for r in records if r.error]
    assert sorted(errors) == ["m0007", "m0150"]
    assert all(set(RECORD_KEYS) <= set(r.to_dict()) for r in records)


def test_spool_keyed_access(tmp_path):
    root = make_tree(tmp_path / "q", n=12)
    spool = queuetool.open_spool(root)
    assert spool.mta == "eml"
    assert len(spool.keys()) == 12 and "m0003" in spool
    assert spool.get("m0003").subject == "message 3"
    assert spool.get_bytes("m0003").startswith(b"From: s3@example.org")
    assert spool.files("m0003")[0].endswith("m0003.eml")


def test_symlink_inside_spool_is_not_followed(tmp_path):
    root = make_tree(tmp_path / "q", n=3, bad=())
    secret = tmp_path / "secret.eml"
    secret.write_bytes(b"Subject: outside the spool\n\nx\n")
    (root / "d0" / "link.eml").symlink_to(secret)
    records = {r.id: r for r in queuetool.scan(root)}
    assert records["link"].error and "symlink" in records["link"].error
    assert records["link"].subject is None


def test_cli_scan_exit_code_3_and_formats(tmp_path):
    root = make_tree(tmp_path / "q", n=20)
    runner = CliRunner()
    result = runner.invoke(main, ["scan", str(root), "--format", "jsonl", "-j", "1"])
    assert result.exit_code == 3
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 20 and sum(1 for r in lines if r["error"]) == 1
    table = runner.invoke(main, ["scan", str(root), "--format", "table", "-j", "1"])
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    csv_out = runner.invoke(main, ["scan", str(root), "--format", "csv", "-j", "1"])
    assert csv_out.stdout.splitlines()[0].startswith("mta,id,queue,files")


def test_cli_show_and_raw(tmp_path):
    root = make_tree(tmp_path / "q", n=3, bad=())
    runner = CliRunner()
    shown = runner.invoke(main, ["show", str(root), "m0001"])
    assert shown.exit_code == 0 and "Subject: message 1" in shown.stdout
    raw = runner.invoke(main, ["show", str(root), "m0001", "--raw"])
    assert raw.stdout_bytes.startswith(b"From: s1@example.org\r\n")
    missing = runner.invoke(main, ["show", str(root), "nope"])
    assert missing.exit_code == 1 and "no queued message" in missing.stderr


def test_keyed_access_lists_the_spool_once(tmp_path, monkeypatch):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(50):
        (root / f"m{i:04d}.eml").write_bytes(f"From: s{i}@example.org\nSubject: {i}\n\nbody\n".encode())
    spool = queuetool.open_spool(root)
    assert isinstance(spool, queuetool.Spool)
    listed = []
    original = spool.reader.iter_units
    monkeypatch.setattr(spool.reader, "iter_units", lambda r: listed.append(1) or original(r))
    for key in ("m0001", "m0020", "m0049"):
        assert spool.get_bytes(key).startswith(b"From: ")
    assert len(listed) == 1
    (root / "m0001.eml").unlink()
    spool.refresh()
    assert "m0001" not in spool


def test_cli_show_prints_rule_hits_and_verdict():
    from corpus import CORPORA

    spool = CORPORA / "postfix" / "spool"
    spam = next(r for r in queuetool.scan(spool) if r.auth_user == "scanner")
    result = CliRunner().invoke(main, ["show", str(spool), spam.id, "--local-domain", "example.com"])
    assert result.exit_code in (0, 3), result.output
    assert "verdict:         spam" in result.stdout
    assert "rule: " in result.stdout and "headers:" in result.stdout
    data = json.loads(CliRunner().invoke(main, ["show", str(spool), spam.id, "--local-domain", "example.com",
                                                "--format", "json"]).stdout)
    assert data["verdict"] == "spam" and data["rules"] and data["headers"]


def _gc_threshold(_context):
    import gc

    return gc.get_threshold()


def test_workers_collect_cycles_less_often_but_a_library_callers_process_is_left_alone():
    import gc

    from queuetool.scan import WorkerPool

    mine = gc.get_threshold()
    with WorkerPool(2) as pool:
        assert list(pool.map(_gc_threshold, [(), ()])) == [(10_000, 10, 10)] * 2
    with WorkerPool(1) as pool:
        assert list(pool.map(_gc_threshold, [()])) == [mine]
    assert gc.get_threshold() == mine


def test_worker_pool_collects_before_forking(monkeypatch):
    """Workers fork from the parent: garbage left by discovery must not be copied into each."""
    import gc

    import importlib

    scan_module = importlib.import_module("queuetool.scan")
    order = []
    real_collect, real_executor = gc.collect, scan_module.ProcessPoolExecutor
    monkeypatch.setattr(gc, "collect", lambda *a: order.append("collect") or real_collect(*a))
    monkeypatch.setattr(scan_module, "ProcessPoolExecutor",
                        lambda *a, **k: order.append("fork") or real_executor(*a, **k))
    with scan_module.WorkerPool(2) as pool:
        assert list(pool.map(_gc_threshold, [()])) == [(10_000, 10, 10)]
    assert order[:2] == ["collect", "fork"]

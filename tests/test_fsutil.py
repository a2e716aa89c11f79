"""fsutil: the string-only path checks, the fast iso_utc and the streaming tree walk."""
from __future__ import annotations

import datetime as dt
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuetool import fsutil


def _datetime_iso(epoch):
    """The reference: what iso_utc returned before it was computed with integer maths."""
    try:
        when = dt.datetime.fromtimestamp(float(epoch), tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("epoch", [
    0, 0.0, -0.0, 1e-7, 0.9999994999, 0.9999995, 0.9999996, 1700000000.9999995, 1700000000.4999995,
    1700000000, 253402300799, 253402300799.9999995, 253402300800, -1, -1.5, -62135596801,
    2 ** 63, 1e300, float("nan"), float("inf"), float("-inf"), "1700000000", "junk",
])
def test_iso_utc_matches_datetime_at_the_edges(epoch):
    assert fsutil.iso_utc(epoch) == _datetime_iso(epoch)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2 ** 40, 2 ** 40),
                 st.integers(0, 2 ** 34).map(lambda n: n / 1e6 + 1.6e9)))
def test_iso_utc_matches_datetime_everywhere(epoch):
    assert fsutil.iso_utc(epoch) == _datetime_iso(epoch)


def test_iso_utc_of_stat_nanosecond_times_rounds_like_datetime():
    for ns in range(0, 2000):
        epoch = (1_700_000_000 * 10 ** 9 + 999_999_000 + ns) / 1e9
        assert fsutil.iso_utc(epoch) == _datetime_iso(epoch)


def test_resolve_inside_refuses_leaving_the_root_and_symlinked_directories(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x")
    (tmp_path / "ln").symlink_to(tmp_path / "a")
    for rel in ["", "/etc/passwd", "\\x", "..", "a/../a/b/f", "a//b/f", "a/b/"]:
        with pytest.raises(fsutil.UnsafePathError):
            fsutil.resolve_inside(tmp_path, rel)
    with pytest.raises(fsutil.UnsafePathError, match="symlink"):
        fsutil.resolve_inside(tmp_path, "ln/b/f", fresh=True)
    assert fsutil.resolve_inside(tmp_path, "a/b/f") == os.path.join(str(tmp_path), "a", "b", "f")
    assert fsutil.resolve_inside(str(tmp_path) + "/", "f") == os.path.join(str(tmp_path), "f")
    assert fsutil.resolve_inside("", "a/f") == "a/f"


def test_open_regular_refuses_a_symlinked_file_and_a_directory(tmp_path):
    (tmp_path / "real").write_bytes(b"data")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dir").mkdir()
    with pytest.raises(fsutil.UnsafePathError, match="symlink"):
        fsutil.open_regular(tmp_path, "link")
    with pytest.raises(IsADirectoryError):
        fsutil.open_regular(tmp_path, "dir")
    assert fsutil.read_file(tmp_path, "real") == b"data"


def test_walk_files_order_is_sorted_files_first_and_skips_directory_symlinks(tmp_path):
    for rel in ["b/2", "b/1", "a/z/9", "a/y", "c", "0"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "d").symlink_to(tmp_path / "a")
    walked = [rel for rel, _ in fsutil.walk_files(tmp_path)]
    assert walked == ["0", "c", "d", "a/y", "a/z/9", "b/1", "b/2"]
    assert [rel for rel, _ in fsutil.walk_files(str(tmp_path), "a")] == ["a/y", "a/z/9"]


def test_read_file_and_stat_reads_whole_files_and_honours_the_limit(tmp_path):
    from queuetool.fsutil import read_file_and_stat

    data = bytes(range(256)) * 9000  # 2.3 MB: more than one 1 MiB chunk
    (tmp_path / "f").write_bytes(data)
    assert read_file_and_stat(tmp_path, "f")[0] == data
    assert read_file_and_stat(tmp_path, "f", limit=1_500_000)[0] == data[:1_500_000]
    assert read_file_and_stat(tmp_path, "f", limit=0)[0] == b""
    (tmp_path / "empty").write_bytes(b"")
    assert read_file_and_stat(tmp_path, "empty")[0] == b""


def test_read_fd_keeps_reading_past_a_stale_size(tmp_path):
    import os

    from queuetool.fsutil import read_fd

    (tmp_path / "f").write_bytes(b"x" * 5000)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert read_fd(fd, None, 10) == b"x" * 5000  # the file grew since its stat said 9 bytes
    finally:
        os.close(fd)


def test_read_tail_gives_the_last_bytes_of_long_and_short_files(tmp_path):
    from queuetool.fsutil import read_tail

    (tmp_path / "long").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "short").write_bytes(b"abc")
    assert read_tail(tmp_path, "long", 100) == (bytes(range(256)) * 10)[-100:]
    assert read_tail(tmp_path, "short", 100) == b"abc"


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this platform")
def test_prefetch_advises_regular_files_and_skips_what_a_read_would_refuse(tmp_path):
    root = tmp_path / "spool"
    (root / "d").mkdir(parents=True)
    (root / "a").write_bytes(b"x" * 5000)
    (root / "d" / "b").write_bytes(b"y")
    (tmp_path / "outside").write_bytes(b"secret")
    (root / "link").symlink_to(tmp_path / "outside")
    (root / "dirlink").symlink_to(root / "d")
    os.mkfifo(root / "fifo")  # a blocking open would hang here: the open must not block
    rels = ["a", "d/b", "link", "dirlink/b", "../outside", "/etc/passwd", "missing", "fifo"]
    assert fsutil.prefetch(root, rels) == 2
    assert fsutil.prefetch(str(root), iter(["a"])) == 1
    assert (root / "a").read_bytes() == b"x" * 5000  # advice only: nothing written


def test_batches_handed_out_have_their_main_files_prefetched(tmp_path, monkeypatch):
    from queuetool.scan import unit_batches
    from queuetool.spools import open_spool

    for i in range(300):
        (tmp_path / f"{i:04d}.eml").write_bytes(b"Subject: %d\n\nbody\n" % i)
    asked: list[list[str]] = []
    monkeypatch.setattr(fsutil, "prefetch", lambda root, rels, *a: asked.append(list(rels)) or len(asked[-1]))
    spool = open_spool(tmp_path)
    batches = [[unit.paths[0] for unit in units] for _spool, units in unit_batches([spool], size=128)]
    assert asked == batches and sum(map(len, asked)) == 300
    asked.clear()
    assert len(list(unit_batches([spool], prefetch=False))) == len(batches) and asked == []

"""Scan-speed benchmark: queuetool against the raw-read floor and the MTAs' own tools.

Generates deterministic spools (benchmarks/spoolgen.py), then times whole commands as
subprocesses, sampling the resident memory of the process tree, warm and cold page
cache (cold = posix_fadvise(DONTNEED) on every file; no root needed). Prints a table;
asserts nothing — numbers are for docs/performance.md.

    python benchmarks/run.py [--n 100000] [--formats eml,postfix,exim] [--jobs 1,2] [--cold]
                             [--workdir /var/tmp/queuetool-bench] [--peers] [--keep]
                             [--local-domain example.com] [--extra "--unordered"]

Spools are generated on all cores (message i depends only on the seed and i). "warm"
means the spool was read once (raw read) before the timed runs.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import spoolgen  # noqa: E402

EXIPICK = "/opt/queuetool-tools/usr/sbin/exipick"
QSHAPE = "/usr/sbin/qshape"


def all_files(root: Path) -> list[str]:
    out = []
    for directory, _dirs, files in os.walk(root):
        out.extend(os.path.join(directory, f) for f in files)
    return out


def evict(root: Path) -> None:
    """Drop the spool's files from the page cache (best effort, no root needed)."""
    for path in all_files(root):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def tree_rss_kb(pid: int) -> int:
    """Resident set of pid and all its descendants, in KiB (Linux /proc)."""
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{p}/task/{p}/children") as fh:
                stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


# Bytecode is written once and reused, as on a real install (some sandboxes set
# PYTHONDONTWRITEBYTECODE, which recompiles queuetool at every start: ~0.3 s).
CHILD_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> tuple[float, int, int, float]:
    """Run cmd with stdout to /dev/null; returns (seconds, peak tree RSS KiB, exit code,
    CPU seconds of the whole process tree: user + system, workers included)."""
    peak = 0
    cpu_before = children_cpu()
    with open(os.devnull, "wb") as devnull:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.PIPE, env=CHILD_ENV)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_kb(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    if proc.returncode not in (0, 3):
        sys.stderr.write(f"  ! {' '.join(cmd)} exited {proc.returncode}: {err.decode(errors='replace')[-300:]}\n")
    return elapsed, peak, proc.returncode, children_cpu() - cpu_before


RAW_READ = """
import os, sys
n = 0
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        with open(os.path.join(d, f), 'rb') as fh:
            n += len(fh.read())
print(n)
"""


def queuetool_cmd(spool: Path, jobs: int, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "queuetool", "scan", str(spool), "--format", "jsonl", "--jobs", str(jobs),
            "--quiet", *(extra or [])]


GEN_CHUNK = 5_000


def generate(fmt: str, n: int, spool: Path) -> None:
    """Write the spool on all cores, in chunks of message numbers."""
    chunks = [(start, min(start + GEN_CHUNK, n)) for start in range(0, n, GEN_CHUNK)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [pool.submit(spoolgen.write_spool, fmt, end, spool, start=start) for start, end in chunks]
        for future in futures:
            future.result()


def peer_cmds(fmt: str, spool: Path, workdir: Path) -> dict[str, list[str]]:
    peers = {}
    if fmt == "exim" and Path(EXIPICK).exists():
        peers["exipick -bp"] = ["perl", EXIPICK, "--spool", str(spool), "-bp"]
    if fmt == "postfix" and Path(QSHAPE).exists():
        conf = workdir / "postfix-conf"
        conf.mkdir(exist_ok=True)
        (conf / "main.cf").write_text(f"queue_directory = {spool}\n")
        (conf / "master.cf").write_text("")
        peers["qshape deferred"] = [QSHAPE, "-c", str(conf), "deferred"]
    return peers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--formats", default="eml,postfix,exim")
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/queuetool-bench"))
    parser.add_argument("--cold", action="store_true", help="also measure with a cold page cache")
    parser.add_argument("--peers", action="store_true", help="also time exipick / qshape on the same spool")
    parser.add_argument("--keep", action="store_true", help="keep generated spools for the next run")
    parser.add_argument("--local-domain", default="example.com",
                        help="passed to queuetool (empty: let it infer the local domains from a sample)")
    parser.add_argument("--extra", default="", help="more queuetool scan options, e.g. '--unordered'")
    args = parser.parse_args()
    extra = (["--local-domain", args.local_domain] if args.local_domain else []) + args.extra.split()

    rows = []
    subprocess.run([sys.executable, "-m", "queuetool", "--help"], env=CHILD_ENV, stdout=subprocess.DEVNULL, check=True)
    for fmt in args.formats.split(","):
        spool = args.workdir / f"{fmt}-{args.n}"
        if not spool.exists():
            t0 = time.perf_counter()
            generate(fmt, args.n, spool)
            print(f"generated {args.n} {fmt} messages in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        nbytes = sum(os.path.getsize(p) for p in all_files(spool))
        caches = ["warm"] + (["cold"] if args.cold else [])
        for cache in caches:
            def run(label: str, cmd: list[str]) -> float:
                if cache == "cold":
                    evict(spool)
                secs, rss, _, cpu = timed(cmd)
                rows.append((fmt, cache, label, args.n / secs, nbytes / secs / 1e6, rss / 1024, secs, cpu))
                print(f"{fmt:8} {cache:4} {label:24} {args.n / secs:9.0f} msgs/s {nbytes / secs / 1e6:7.0f} MB/s "
                      f"{rss / 1024:6.0f} MiB {secs:7.1f} s {1e6 * cpu / args.n:6.0f} us CPU/msg", file=sys.stderr)
                return secs

            raw_read = [sys.executable, "-c", RAW_READ, str(spool)]
            if cache == "warm":
                subprocess.run(raw_read, stdout=subprocess.DEVNULL)  # pull the spool into the page cache
            run("raw read (1 proc)", raw_read)
            for jobs in map(int, args.jobs.split(",")):
                run(f"queuetool scan -j{jobs}", queuetool_cmd(spool, jobs, extra))
            if args.peers:
                for label, cmd in peer_cmds(fmt, spool, args.workdir).items():
                    run(label, cmd)
        if not args.keep:
            shutil.rmtree(spool, ignore_errors=True)

    print(f"\n{'format':8} {'cache':5} {'command':24} {'msgs/s':>9} {'MB/s':>7} {'peak RSS':>9} {'seconds':>8} "
          f"{'CPU us/msg':>10}  vs raw  vs peer")
    for fmt, cache, label, rate, mbs, rss, secs, cpu in rows:
        raw = next(r for r in rows if r[0] == fmt and r[1] == cache and r[2].startswith("raw"))
        peer = [r for r in rows if r[0] == fmt and r[1] == cache and not r[2].startswith(("raw", "queuetool"))]
        vs_peer = f"{rate / peer[0][3]:5.1f}x" if peer and label.startswith("queuetool") else ""
        print(f"{fmt:8} {cache:5} {label:24} {rate:9.0f} {mbs:7.0f} {rss:7.0f}Mi {secs:8.1f} {1e6 * cpu / args.n:10.0f}  "
              f"{raw[6] / secs if secs else 0:5.2f}x  {vs_peer}")


if __name__ == "__main__":
    main()

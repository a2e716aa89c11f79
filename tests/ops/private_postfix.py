"""A private Postfix instance for the live test: own config and queue directories under
a temporary directory, SMTP on 127.0.0.1 and a free high port inside its own network
namespace (only `lo`), every transport deferred, so nothing is ever delivered or leaves.
The system instance (/etc/postfix, /var/spool/postfix) is never touched.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGE_MASTER_CF = Path("/etc/postfix/master.cf")
UNUSED_SERVICES = {"maildrop", "uucp", "ifmail", "bsmtp", "scalemail-backend", "mailman", "tlsmgr"}
TOOLS = ("postfix", "postsuper", "postqueue", "postconf")


def missing_requirements() -> str | None:
    """Why a private Postfix cannot run here (one line), or None."""
    missing = [t for t in TOOLS if not (shutil.which(t) or os.path.exists(f"/usr/sbin/{t}"))]
    if missing:
        return (f"Postfix tools missing ({', '.join(missing)}): run scripts/install-test-packages.sh as root "
                "(python3 dev.py test does it on Debian)")
    if os.name != "posix" or os.geteuid() != 0:
        return "the live Postfix test needs root (Postfix's master starts as root)"
    if not shutil.which("ip"):
        return "iproute2 ('ip') is needed to give the private Postfix its own network namespace"
    if not PACKAGE_MASTER_CF.exists():
        return f"{PACKAGE_MASTER_CF} missing: the postfix package is not installed completely"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _master_cf(port: int) -> str:
    lines = []
    keep = False
    for line in PACKAGE_MASTER_CF.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            if keep:
                lines.append(line)
            continue
        fields = line.split()
        keep = fields[0] not in UNUSED_SERVICES
        if not keep:
            continue
        if fields[0] == "smtp" and fields[1] == "inet":
            fields[0] = f"127.0.0.1:{port}"
        fields[4] = "n"  # no chroot: the private queue directory has no chroot files
        lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


class PrivatePostfix:
    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.config = self.base / "config"
        self.queue = self.base / "queue"
        self.data = self.base / "data"
        self.port = free_port()
        self.netns = f"qt-live-{os.getpid()}-{self.port}"

    def _run(self, *cmd: str, check: bool = True, timeout: float = 120, stdin: str | None = None
             ) -> subprocess.CompletedProcess:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=stdin)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[:500]}")
        return done

    def in_netns(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return self._run("ip", "netns", "exec", self.netns, *cmd, **kw)

    def start(self) -> None:
        for d in (self.config, self.queue, self.data):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        shutil.chown(self.data, "postfix", "postfix")
        main_cf = f"""\
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.example.com
mydomain = example.com
myorigin = example.com
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
defer_transports = smtp, relay, local, virtual, lmtp, error, retry
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
maillog_file = {self.base}/maillog
maillog_file_prefixes = {self.base}
smtpd_banner = $myhostname ESMTP
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 7200s
"""
        (self.config / "main.cf").write_text(main_cf)
        (self.config / "master.cf").write_text(_master_cf(self.port))
        self._run("ip", "netns", "add", self.netns)
        self.in_netns("ip", "link", "set", "lo", "up")
        self.in_netns("postfix", "-c", str(self.config), "check", check=False)
        self.in_netns("postfix", "-c", str(self.config), "start")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.in_netns(sys.executable, "-c", _PROBE.format(port=self.port), check=False).returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"private Postfix did not listen on 127.0.0.1:{self.port}: "
                           + (self.base / "maillog").read_text(errors="replace")[-800:]
                           if (self.base / "maillog").exists() else "no maillog")

    def stop(self) -> None:
        self._run("postfix", "-c", str(self.config), "stop", check=False)
        time.sleep(0.5)
        self._run("postfix", "-c", str(self.config), "abort", check=False)
        self._run("ip", "netns", "del", self.netns, check=False)

    def postqueue_json(self) -> list[dict]:
        done = self._run("postqueue", "-c", str(self.config), "-j")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def inject(self, messages: list[dict], pause: float = 0.0) -> subprocess.Popen:
        """Send messages over SMTP from inside the namespace; the child prints queue ids as JSON."""
        script = _INJECT.format(port=self.port, pause=pause)
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, "-c", script],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdin.write(json.dumps(messages))
        proc.stdin.close()
        return proc

    @staticmethod
    def queue_ids(proc: subprocess.Popen, timeout: float = 300) -> list[str]:
        """Wait for an injector; the queue ids Postfix answered with, in order."""
        out = proc.stdout.read()
        proc.wait(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"SMTP injection failed: {proc.stderr.read()[-800:]}")
        return json.loads(out)


_PROBE = """
import socket, sys
s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
sys.exit(0 if s.recv(100).startswith(b"220") else 1)
"""

# stdin: JSON list of {{"sender", "recipients", "data"}}; stdout: JSON list of queue ids (or errors)
_INJECT = """
import json, smtplib, sys, time
messages = json.load(sys.stdin)
out = []
smtp = smtplib.SMTP("127.0.0.1", {port}, local_hostname="client.example.net", timeout=30)
for m in messages:
    smtp.mail(m["sender"])
    for r in m["recipients"]:
        code, _ = smtp.rcpt(r)
        assert code == 250, (code, r)
    code, reply = smtp.data(m["data"].encode())
    reply = reply.decode()
    out.append(reply.rsplit(" ", 1)[-1] if code == 250 and "queued as" in reply else "ERROR " + reply)
    time.sleep({pause})
smtp.quit()
json.dump(out, sys.stdout)
"""

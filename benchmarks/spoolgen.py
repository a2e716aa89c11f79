"""Deterministic spool writers for benchmarks: N messages from templates, any format.

Message i comes from random.Random(f"{seed}:{i}") alone, so output is byte-identical
however the work is split. The on-disk formats follow the MTAs' sources (see
docs/readers/*.md); generated Postfix files are checked with `postcat`, Exim spools with
`exim -bp`/`exipick` (tests/benchmarks/test_spoolgen_real_tools.py).

    python benchmarks/spoolgen.py FORMAT N OUTDIR [--seed S]
"""
from __future__ import annotations

import argparse
import base64
import os
import random
import string
import time
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("eml", "postfix", "exim", "sendmail", "smtpsvc", "exchange")
BASE_TIME = 1_790_000_000  # 2026-09-21, fixed so output never depends on the clock

WORDS = ("invoice meeting report quarter budget project update schedule review contract "
         "delivery order payment account team customer support release draft notes").split()
SPAM_SUBJECTS = ("Cheap meds online {n}", "V1agra 80% off today", "Your pharmacy order #{n}",
                 "Re: best prices for pills", "=?utf-8?B?0JTQtdGI0LXQstGL0LUg0LvQtdC60LDRgNGB0YLQstCw?= {n}")
OUTSIDE = [f"d{i}.example" for i in range(200)]


@dataclass
class Message:
    index: int
    kind: str
    sender: str
    recipients: list[str]
    client_ip: str
    helo: str
    auth_user: str | None
    arrival: int
    header: bytes  # header block, LF line ends, without the blank line
    body: bytes


def _received(r: random.Random, ip: str, helo: str, auth: str | None, when: int) -> str:
    proto = "ESMTPSA" if auth else "ESMTP"
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when))
    lines = [f"Received: from {helo} (host-{ip.replace('.', '-')}.example.net [{ip}])\n"
             f"\tby mail.example.com (Postfix) with {proto} id {r.getrandbits(40):X}\n\tfor <x@example.com>; {stamp}\n"]
    for hop in range(r.randint(1, 6)):
        lines.append(f"Received: from relay{hop}.example.net (relay{hop}.example.net [198.51.100.{r.randint(1, 254)}])\n"
                     f"\tby mx{hop}.example.org with ESMTP id {r.getrandbits(36):x}; {stamp}\n")
    return "".join(lines)


def make_message(seed: int, i: int) -> Message:
    """The i-th message of a run: a mix of legit, multipart, spam campaign and DSN."""
    r = random.Random(f"{seed}:{i}")
    roll = r.random()
    when = BASE_TIME + i * 7 + r.randint(0, 5)
    if roll < 0.5:
        kind, user = "legit", r.choice(["alice", "bob", "carol"])
        sender = f"{user}@example.com"
        rcpts = [f"{r.choice(WORDS)}@{r.choice(OUTSIDE)}" for _ in range(r.randint(1, 3))]
        ip, helo, auth = f"10.0.0.{r.randint(2, 60)}", "office-pc.example.com", user
        subject = " ".join(r.choice(WORDS) for _ in range(r.randint(3, 7))).capitalize()
    elif roll < 0.85:
        kind = "spam"
        sender = f"{''.join(r.choice(string.ascii_lowercase) for _ in range(8))}@example.com"
        rcpts = [f"u{r.randint(1, 99999)}@{r.choice(OUTSIDE)}" for _ in range(r.randint(1, 30))]
        ip, helo, auth = f"203.0.113.{r.randint(1, 254)}", f"pc{r.randint(1, 999)}", "scanner"
        subject = r.choice(SPAM_SUBJECTS).format(n=r.randint(1, 999))
    elif roll < 0.95:
        kind = "relay"
        sender = f"promo@{r.choice(OUTSIDE)}"
        rcpts = [f"u{r.randint(1, 99999)}@{r.choice(OUTSIDE)}" for _ in range(r.randint(1, 10))]
        ip, helo, auth = f"192.0.2.{r.randint(1, 254)}", "relay-abuser", None
        subject = r.choice(SPAM_SUBJECTS).format(n=r.randint(1, 999))
    else:
        kind, sender = "backscatter", ""
        rcpts = [f"{r.choice(WORDS)}{r.randint(1, 999)}@example.com"]
        ip, helo, auth = f"198.51.100.{r.randint(1, 254)}", "mx.example.net", None
        subject = "Undelivered Mail Returned to Sender"
    msgid = f"<{r.getrandbits(64):x}.{i}@{(sender or 'mx.example.net').split('@')[-1]}>"
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when - r.randint(0, 600)))
    header = _received(r, ip, helo, auth, when)
    header += (f"From: {'MAILER-DAEMON@mx.example.net' if kind == 'backscatter' else sender}\n"
               f"To: {', '.join(rcpts[:5])}\nSubject: {subject}\nDate: {date}\nMessage-ID: {msgid}\n"
               "MIME-Version: 1.0\n")
    if kind == "backscatter":
        boundary = f"dsn{r.getrandbits(32):x}"
        header += f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\n'
        body = (f"--{boundary}\nContent-Type: text/plain\n\nThe message could not be delivered.\n\n"
                f"--{boundary}\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
                f"Final-Recipient: rfc822; {rcpts[0]}\nAction: failed\nStatus: 5.1.1\n\n"
                f"--{boundary}\nContent-Type: text/rfc822-headers\n\nFrom: {rcpts[0]}\nSubject: hello\n\n--{boundary}--\n")
    elif r.random() < 0.3:
        boundary = f"b{r.getrandbits(32):x}"
        header += f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
        attachment = base64.encodebytes(r.randbytes(r.randint(2000, 60000))).decode()
        body = (f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{_paragraphs(r)}\n--{boundary}\n"
                f"Content-Type: application/pdf; name=doc{i}.pdf\nContent-Transfer-Encoding: base64\n\n"
                f"{attachment}--{boundary}--\n")
    else:
        header += "Content-Type: text/plain; charset=utf-8\n"
        body = _paragraphs(r)
        if kind in ("spam", "relay"):
            body += f"\nhttp://bit.ly/{r.getrandbits(30):x} http://pharma{r.randint(1, 9)}.example/buy\n"
    return Message(i, kind, sender, rcpts, ip, helo, auth, when, header.encode(), body.encode())


def _paragraphs(r: random.Random) -> str:
    return "\n\n".join(" ".join(r.choice(WORDS) for _ in range(r.randint(20, 90))) for _ in range(r.randint(1, 12))) + "\n"


# ---------------------------------------------------------------- eml
def write_eml(root: Path, msg: Message) -> None:
    d = root / f"{msg.index % 256:02x}"
    d.mkdir(parents=True, exist_ok=True)
    data = (msg.header + b"\n" + msg.body).replace(b"\n", b"\r\n")
    (d / f"{msg.index:08d}.eml").write_bytes(data)


# ---------------------------------------------------------------- postfix
_B52 = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"


def _base(n: int, alphabet: str, width: int = 0) -> str:
    digits = ""
    while n:
        n, rem = divmod(n, len(alphabet))
        digits = alphabet[rem] + digits
    return digits.rjust(width, alphabet[0]) or alphabet[0]


def postfix_long_id(sec: int, usec: int, inode: int) -> str:
    """Long queue id per mail_queue.h: base52 seconds + 4 base52 usec + 'z' + base51 inode."""
    return _base(sec, _B52, 6) + _base(usec, _B52, 4) + "z" + _base(inode, _B52[:51])


def _rec(rtype: bytes, payload: bytes) -> bytes:
    n, out = len(payload), bytearray(rtype)
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + payload


def postfix_queue_file(msg: Message, inode: int) -> tuple[str, bytes]:
    usec = (msg.index * 7919) % 1_000_000
    qid = postfix_long_id(msg.arrival, usec, inode)
    attrs = [f"create_time={msg.arrival}", "rewrite_context=remote",
             f"log_client_name=host-{msg.client_ip.replace('.', '-')}.example.net",
             f"log_client_address={msg.client_ip}", "log_client_port=40000", f"log_helo_name={msg.helo}",
             "log_protocol_name=ESMTP", f"client_name=host-{msg.client_ip.replace('.', '-')}.example.net",
             f"client_address={msg.client_ip}", f"helo_name={msg.helo}", "protocol_name=ESMTP"]
    if msg.auth_user:
        attrs[2:2] = ["sasl_method=PLAIN", f"sasl_username={msg.auth_user}"]
    content = bytearray()
    for line in (msg.header + b"\n" + msg.body).split(b"\n")[:-1]:
        while len(line) > 2048:
            content += _rec(b"L", line[:2048])
            line = line[2048:]
        content += _rec(b"N", line)
    envelope = bytearray(_rec(b"T", f"{msg.arrival} {usec}".encode()))
    for attr in attrs:
        envelope += _rec(b"A", attr.encode())
    envelope += _rec(b"S", msg.sender.encode())
    extracted = b"".join(_rec(b"R", r.encode()) for r in msg.recipients) + _rec(b"E", b"")
    size_len = len(_rec(b"C", b"x" * 95))
    data_offset = size_len + len(envelope) + len(_rec(b"M", b""))
    content_size = len(content)
    size = _rec(b"C", ("%15d %15d %15d %15d %15d %15d" % (
        content_size, data_offset, len(msg.recipients), 0, len(msg.header) + 1 + len(msg.body), 0)).encode())
    assert len(size) == size_len
    return qid, size + bytes(envelope) + _rec(b"M", b"") + bytes(content) + _rec(b"X", b"") + extracted


def write_postfix(root: Path, msg: Message) -> None:
    qid, data = postfix_queue_file(msg, inode=100000 + msg.index)
    usec_hex = "%05X" % ((msg.index * 7919) % 1_000_000)
    d = root / "deferred" / usec_hex[0]
    d.mkdir(parents=True, exist_ok=True)
    path = d / qid
    path.write_bytes(data)
    os.chmod(path, 0o700)


# ---------------------------------------------------------------- exim
_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def exim_id(msg: Message) -> str:
    """16-character Exim 4.96 id: base62 seconds, pid, usec/5000."""
    return f"{_base(msg.arrival, _B62, 6)}-{_base(10000 + msg.index, _B62, 6)}-{_base(msg.index % 200, _B62, 2)}"


def exim_files(msg: Message) -> tuple[str, bytes, bytes]:
    mid = exim_id(msg)
    lines = [f"{mid}-H", "Debian-exim 101 103", f"<{msg.sender}>", f"{msg.arrival} 0",
             f"-received_time_usec .{msg.index % 1000000:06d}",
             f"--helo_name {msg.helo}", f"-host_address [{msg.client_ip}]:40000",
             "-interface_address [127.0.0.1]:25",
             f"-received_protocol {'esmtpa' if msg.auth_user else 'esmtp'}"]
    if msg.auth_user:
        lines += ["-host_auth plain_server", "-host_auth_pubname PLAIN", f"--auth_id {msg.auth_user}"]
    linecount = msg.body.count(b"\n")
    lines += [f"-body_linecount {linecount}", "-max_received_linelength 998", "-deliver_firsttime",
              "XX", str(len(msg.recipients)), *msg.recipients, ""]
    head = ("\n".join(lines) + "\n").encode()
    for field in _unfolded_fields(msg.header):
        flag = {b"received": b"P", b"from": b"F", b"to": b"T", b"message-id": b"I"}.get(
            field.split(b":", 1)[0].lower(), b" ")
        head += b"%03d" % len(field) + flag + b" " + field
    return mid, head, f"{mid}-D\n".encode() + msg.body


def _unfolded_fields(header: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in header.split(b"\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\n"
        else:
            fields.append(line + b"\n")
    return fields


def write_exim(root: Path, msg: Message) -> None:
    mid, head, data = exim_files(msg)
    d = root / "input"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{mid}-H").write_bytes(head)
    (d / f"{mid}-D").write_bytes(data)


# ---------------------------------------------------------------- sendmail
def sendmail_id(msg: Message) -> str:
    t = time.gmtime(msg.arrival)
    c = _B62
    return (c[t.tm_year % 60] + c[t.tm_mon - 1] + c[t.tm_mday] + c[t.tm_hour] + c[t.tm_min] + c[t.tm_sec]
            + c[(msg.index // 62) % 60] + c[msg.index % 62] + "%06d" % (20000 + msg.index % 900000))


def sendmail_files(msg: Message) -> tuple[str, bytes, bytes]:
    qid = sendmail_id(msg)
    lines = ["V8", f"T{msg.arrival}", f"K{msg.arrival + 900}", "N2", "P120000", "B7BIT",
             "MDeferred: Connection refused by mx.d0.example.", "Fbs",
             f"$_host-{msg.client_ip.replace('.', '-')}.example.net [{msg.client_ip}]",
             f"$r{'ESMTPA' if msg.auth_user else 'ESMTP'}", f"$s{msg.helo}", "${daemon_flags}",
             f"S<{msg.sender}>"]
    lines += [f"RPFD:<{r}>" for r in msg.recipients]
    out = ("\n".join(lines) + "\n").encode() + b"H?P?Return-Path: <\x81g>\n"
    for field in _unfolded_fields(msg.header):
        out += b"H??" + field
    return qid, out + b".\n", msg.body


def write_sendmail(root: Path, msg: Message) -> None:
    qid, qf, df = sendmail_files(msg)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"df{qid}").write_bytes(df)
    (root / f"qf{qid}").write_bytes(qf)


# ---------------------------------------------------------------- Exchange
def write_smtpsvc(root: Path, msg: Message) -> None:
    """Exchange 2003 vsi 1\\Queue: content only, SMTPSVC Received line, X-OriginalArrivalTime."""
    d = root / "Queue"
    d.mkdir(parents=True, exist_ok=True)
    filetime = (msg.arrival + 11644473600) * 10_000_000
    stamp = time.strftime("%d %b %Y %H:%M:%S", time.gmtime(msg.arrival))
    top = (f"Received: from {msg.helo} ([{msg.client_ip}]) by MAIL.example.com with Microsoft "
           f"SMTPSVC(6.0.3790.4675);\r\n\t {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(msg.arrival))}\r\n")
    tail = f"X-OriginalArrivalTime: {stamp}.0000 (UTC) FILETIME=[{filetime & 0xFFFFFFFF:08X}:{filetime >> 32:08X}]\r\n"
    data = top.encode() + msg.header.replace(b"\n", b"\r\n") + tail.encode() + b"\r\n" + msg.body.replace(b"\n", b"\r\n")
    (d / f"NTFS_{msg.index:016X}01C9.EML").write_bytes(data)


def write_exchange(root: Path, msg: Message) -> None:
    """Exchange 2007+ Replay directory file: injected X-header block first."""
    d = root / "Replay"
    d.mkdir(parents=True, exist_ok=True)
    xh = f"X-Sender: <{msg.sender}> BODY=7bit\r\n" + "".join(
        f"X-Receiver: <{r}> NOTIFY=NEVER ORcpt=rfc822;{r}\r\n" for r in msg.recipients)
    xh += f"X-CreatedBy: MSExchange15\r\nX-HeloDomain: {msg.helo}\r\nX-Source: SMTP:Default MAIL\r\nX-SourceIPAddress: {msg.client_ip}\r\n"
    xh += f"X-EndOfInjectedXHeaders: {len(xh.encode())}\r\n"
    data = xh.encode() + msg.header.replace(b"\n", b"\r\n") + b"\r\n" + msg.body.replace(b"\n", b"\r\n")
    (d / f"{msg.index:08d}.eml").write_bytes(data)


WRITERS = {"eml": write_eml, "postfix": write_postfix, "exim": write_exim, "sendmail": write_sendmail,
           "smtpsvc": write_smtpsvc, "exchange": write_exchange}


def write_spool(fmt: str, n: int, root: Path, seed: int = 20261127, start: int = 0) -> int:
    """Write messages start..n-1 of `fmt` into root; returns bytes of message content."""
    writer = WRITERS[fmt]
    total = 0
    for i in range(start, n):
        msg = make_message(seed, i)
        writer(root, msg)
        total += len(msg.header) + 1 + len(msg.body)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("format", choices=FORMATS)
    parser.add_argument("n", type=int)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args()
    total = write_spool(args.format, args.n, args.outdir, args.seed)
    print(f"wrote {args.n} {args.format} messages ({total / 1e6:.1f} MB) to {args.outdir}")


if __name__ == "__main__":
    main()

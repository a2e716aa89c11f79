#!/usr/bin/env python3
"""Build corpora/eml: plain-message inputs the `eml` reader takes, telling the incident story.

    spool/eml-tree/          .eml files (saved from the queue by a responder), nested folder
    spool/Maildir/           alice's Maildir: new/ cur/ tmp/ and a Maildir++ .Junk folder
    spool/mbox/              carol's mbox (From_ lines, >From escaping) and an exported inbox.mbox

Deterministic; run: python3 corpora/eml/generate.py  (rewrites spool/, files.json, manifest.jsonl)
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPOOL = HERE / "spool"
DAY = dt.datetime(2026, 11, 26, tzinfo=dt.timezone.utc)
files_meta: dict[str, dict] = {}
manifest: list[dict] = []


def at(hour: int, minute: int) -> dt.datetime:
    return DAY + dt.timedelta(hours=hour, minutes=minute)


def rfc2822(when: dt.datetime) -> str:
    return f"{when.strftime('%a')}, {when.day} {when.strftime('%b %Y %H:%M:%S')} +0000"


def write(rel: str, data: bytes, when: dt.datetime) -> None:
    path = SPOOL / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    files_meta[rel] = {"mtime": float(calendar.timegm(when.utctimetuple())), "mode": 0o600}


def msg(headers: list[str], body: list[str], eol: str = "\r\n") -> bytes:
    return (eol.join(headers + [""] + body) + eol).encode("utf-8")


def truth(id_, kind, scenario, account, client_ip, sender, recipients, queue, notes="") -> None:
    manifest.append({"id": id_, "kind": kind, "scenario": scenario, "account": account, "client_ip": client_ip,
                     "sender": sender, "recipients": recipients, "queue": queue, "notes": notes})


def spam(n: int, when: dt.datetime) -> tuple[list[str], list[str], str, list[str]]:
    sender = f"{['offers', 'sales', 'noreply'][n % 3]}@pharma-deals{n % 3}.example"
    rcpts = [f"user{n}@shop.example", f"user{n + 1}@mail.test"]
    headers = [
        f"Received: from scan01 (scan01 [203.0.113.{45 + n}]) (Authenticated sender: scanner)"
        f" by mail.example.com (Postfix) with ESMTPSA id 4SV{n:03d}X; {rfc2822(when)}",
        f"From: \"Pharmacy Online\" <{sender}>", "To: undisclosed-recipients:;",
        f"Subject: Cheap meds -{40 + 5 * n}% today", f"Date: {rfc2822(when)}",
        f"Message-ID: <{hashlib.md5(f'eml-spam{n}'.encode()).hexdigest()[:20]}@scan01>",
    ]
    return headers, ["Best online pharmacy, no prescription needed!", "From now on: order at pharma-deals.example"], \
        sender, rcpts


def eml_tree() -> None:
    for n in range(3):
        when = at(11, 5 + 4 * n)
        headers, body, sender, rcpts = spam(n, when)
        rel = f"eml-tree/saved-from-queue/spam-{n:02d}.eml"
        write(rel, msg(headers, body), when)
        truth(f"spam-{n:02d}", "spam", "compromised-account", "scanner", f"203.0.113.{45 + n}", sender, rcpts, "eml",
              "copied out of the queue; the Received line names the SASL login")
    when = at(8, 10)
    write("eml-tree/legit-alice.eml", msg([
        "From: =?UTF-8?Q?Alice_Example?= <alice@example.com>", "To: partner1@partner.example",
        "Subject: =?UTF-8?Q?Angebot_f=C3=BCr_Q1?=", f"Date: {rfc2822(when)}", "Message-ID: <legit.alice@example.com>",
        "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b1"'],
        ["--b1", "Content-Type: text/plain; charset=utf-8", "", "Preisliste anbei.", "--b1",
         "Content-Type: application/pdf; name=x.pdf", "Content-Transfer-Encoding: base64", "", "JVBERi0xLjQK", "--b1--"]),
        when)
    truth("legit-alice", "legit", "outbound", "alice", "10.0.0.21", "alice@example.com",
          ["partner1@partner.example"], "eml")
    when = at(13, 40)
    write("eml-tree/malformed.eml", b"From: =?utf-8?B?broken===?= <x@bulk.example>\n"
          b"Subject: Gr\xfc\xdfe\nX-Long: " + b"A" * 1500 + b"\n\nno date, no message-id, LF only\n", when)
    truth("malformed", "malformed", "open-relay", None, "192.0.2.11", "x@bulk.example", ["someone@victim.test"], "eml",
          "no Date/Message-ID, raw 8-bit, LF line ends")


def maildir() -> None:
    entries = [
        ("new", "1764151200.M1P100.mail.example.com", "", at(9, 15), "legit", "inbound", "198.51.100.10",
         "orders@partner.example", "Order confirmation 4711", False),
        ("cur", "1764151800.M2P101.mail.example.com", ":2,S", at(9, 25), "legit", "inbound", "198.51.100.11",
         "news@vendor.example", "Newsletter November", False),
        ("cur", "1764165600.M3P102.mail.example.com", ":2,RS", at(13, 20), "backscatter", "bounce", "198.51.100.77",
         "", "Undelivered Mail Returned to Sender", True),
        ("tmp", "1764166000.M4P103.mail.example.com", "", at(13, 27), "backscatter", "bounce", "198.51.100.78",
         "", "Delivery Status Notification (Failure)", True),
        (".Junk/cur", "1764166500.M5P104.mail.example.com", "!2,ST", at(13, 35), "backscatter", "bounce",
         "198.51.100.79", "", "Mail delivery failed: returning message to sender", True),
    ]
    for sub, unique, info, when, kind, scenario, ip, sender, subject, is_dsn in entries:
        headers = [f"Return-Path: <{sender}>",
                   f"Received: from remote ([{ip}]) by mail.example.com (Postfix) with ESMTP id {unique[-6:]}; {rfc2822(when)}",
                   f"From: {'MAILER-DAEMON@remote.example.org' if is_dsn else sender}", "To: alice@example.com",
                   f"Subject: {subject}", f"Date: {rfc2822(when)}", f"Message-ID: <{unique}@remote.example.org>"]
        if is_dsn:
            headers += ["MIME-Version: 1.0", 'Content-Type: multipart/report; report-type=delivery-status; boundary="R"']
            body = ["--R", "Content-Type: text/plain", "", "This is the mail system.", "--R",
                    "Content-Type: message/delivery-status", "", "Reporting-MTA: dns; mx.remote.example.org", "",
                    "Final-Recipient: rfc822; nobody@remote.example.org", "Action: failed", "Status: 5.1.1",
                    "Diagnostic-Code: smtp; 550 5.1.1 User unknown", "", "--R", "Content-Type: text/rfc822-headers", "",
                    "From: alice@example.com", "Subject: invoice", "Message-ID: <forged@spamhost.example>", "", "--R--"]
        else:
            body = ["Thank you."]
        rel_dir = f"Maildir/{sub}"
        write(f"{rel_dir}/{unique}{info}", msg(headers, body, "\n"), when)
        unit_id = f".Junk/{unique}" if sub.startswith(".Junk") else unique
        truth(unit_id, kind, scenario, None, ip, sender, ["alice@example.com"], sub.rpartition("/")[2],
              "null-sender DSN for mail alice never sent" if is_dsn else "partner mail")


def mbox() -> None:
    parts = []
    offset = 0
    for n in range(3):
        when = at(11, 30 + n)
        headers, body, sender, rcpts = spam(n + 3, when)
        body = body + [">From the pharmacy team"] if n == 1 else body
        stored = [">" + line if line.lstrip(">").startswith("From ") else line for line in body]  # mboxrd
        text = f"From {sender} {when.strftime('%a %b %d %H:%M:%S %Y')}\n".encode() + msg(headers, stored, "\n") + b"\n"
        truth(f"carol.mbox:{offset}", "spam", "compromised-account", "scanner", f"203.0.113.{48 + n}", sender, rcpts,
              "mbox", "carol's copy (she was Bcc'd); the From_ line keeps the envelope sender")
        parts.append(text)
        offset += len(text)
    text = (b"From MAILER-DAEMON Thu Nov 26 14:00:00 2026\n" + b"From: broken\nSubject: \xff\xfe raw\n\n"
            b"no header end problems\n\n")
    truth(f"carol.mbox:{offset}", "malformed", "bounce", None, None, "", ["carol@example.com"], "mbox",
          "raw 8-bit subject, minimal headers")
    parts.append(text)
    write("mbox/carol.mbox", b"".join(parts), at(15, 0))
    when = at(10, 0)
    one = b"From bob@example.com Thu Nov 26 10:00:00 2026\n" + msg(
        ["From: Bob <bob@example.com>", "To: carol@example.com", "Subject: Lunch?", f"Date: {rfc2822(when)}",
         "Message-ID: <lunch@example.com>"], ["Lunch on Friday?"], "\n")
    write("mbox/inbox.mbox", one, when)
    truth("inbox.mbox:0", "legit", "outbound", "bob", "10.0.0.22", "bob@example.com", ["carol@example.com"], "mbox")


def main() -> None:
    if SPOOL.exists():
        shutil.rmtree(SPOOL)
    eml_tree()
    maildir()
    mbox()
    (HERE / "files.json").write_text(json.dumps(dict(sorted(files_meta.items())), indent=1) + "\n")
    (HERE / "manifest.jsonl").write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in manifest))


if __name__ == "__main__":
    main()

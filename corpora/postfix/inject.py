#!/usr/bin/env python3
"""Feed the incident story to a real Postfix (run INSIDE the chroot and netns).

generate.sh calls this in steps, re-configuring Postfix in between:
    inject.py short      first part of the story (short queue ids)
    inject.py long       second part (enable_long_queue_ids=yes, authenticated Received)
    inject.py incoming   late SMTP mail while qmgr is removed (stays in incoming/)
    inject.py maildrop   late web-script mail while pickup is removed (stays in maildrop/)
    inject.py inflight   open a session, send half a DATA and wait (a 0600 incoming file)
    inject.py tarpit     a listener on 127.0.0.1:2526 that accepts and never greets
    inject.py manifest   resolve queue ids and write /root/out/manifest.jsonl
    inject.py postcat D  sha256 of `postcat -bh` per queue file below D (a test oracle)

Every injected message is described in /root/out/injected.jsonl (the ground truth the
manifest is made from). Only the Python standard library is used.
"""
from __future__ import annotations

import json
import os
import re
import smtplib
import socket
import subprocess
import sys
import time
from email.utils import formatdate

SERVER = ("127.0.0.1", 25)
OUT = "/root/out"
INJECTED = f"{OUT}/injected.jsonl"
PASSWORDS = {"alice": "Alice-2024!", "bob": "b0b-secret", "carol": "Car0l#mail", "scanner": "scan1234"}
_counter = [0]


# ---------------------------------------------------------------- message templates
def msgid(tag: str) -> str:
    _counter[0] += 1
    return f"<{int(time.time())}.{os.getpid()}.{_counter[0]}.{tag}@mail.example.com>"


def plain(frm: str, to: str, subject: str, body: str, mid: str | None, date: bool = True,
          extra: str = "") -> bytes:
    head = f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
    if date:
        head += f"Date: {formatdate(localtime=False)}\r\n"
    if mid:
        head += f"Message-ID: {mid}\r\n"
    head += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    head += "Content-Transfer-Encoding: 8bit\r\n" + extra
    return (head + "\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def with_attachment(frm: str, to: str, subject: str, body: str, mid: str, filename: str) -> bytes:
    boundary = "=_qt_boundary_7f3a"
    blob = "".join(f"{i:05d},widget-{i % 17},{(i * 37) % 1000}.00\n" for i in range(60))
    import base64
    encoded = base64.encodebytes(blob.encode()).decode().replace("\n", "\r\n")
    text = (
        f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        "This is a multi-part message in MIME format.\r\n"
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        f"--{boundary}\r\nContent-Type: text/csv; name=\"{filename}\"\r\n"
        f"Content-Disposition: attachment; filename=\"{filename}\"\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--{boundary}--\r\n"
    )
    return text.encode("utf-8")


def alternative(frm: str, to: str, subject: str, text: str, html: str, mid: str) -> bytes:
    boundary = "=_alt_0192"
    return (
        f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{boundary}--\r\n"
    ).encode("utf-8")


PHARMA_SUBJECTS = [
    "Cheap meds without prescription - 80% off",
    "Your pharmacy order #{n} is ready",
    "V1agra and C1alis best prices",
    "Re: discreet shipping worldwide",
    "Limited offer: pills for {n} cents",
]


def pharma(frm: str, to: str, n: int, mid: str) -> bytes:
    subject = PHARMA_SUBJECTS[n % len(PHARMA_SUBJECTS)].format(n=n * 7 + 3)
    html = ("<html><body><p>Best online pharmacy! <b>No prescription needed.</b></p>"
            f"<p><a href=\"http://pharma-{n % 3}.shop.example/?id={n}\">ORDER NOW</a></p></body></html>")
    return alternative(frm, to, subject, "Best online pharmacy! No prescription needed. "
                       f"http://pharma-{n % 3}.shop.example/?id={n}", html, mid)


def dsn(to: str, orig_from: str, orig_to: str, reporting: str, mid: str) -> bytes:
    boundary = "=_dsn_5501"
    return (
        f"From: MAILER-DAEMON@{reporting} (Mail Delivery System)\r\nTo: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nDate: {formatdate()}\r\nMessage-ID: {mid}\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host {reporting}.\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        f"<{orig_to}>: host mx.{orig_to.split('@')[1]} said: 550 5.1.1 User unknown\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {reporting}\r\n\r\n"
        f"Final-Recipient: rfc822; {orig_to}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {orig_from}\r\nTo: {orig_to}\r\n"
        f"Subject: Cheap meds without prescription\r\n--{boundary}--\r\n"
    ).encode("ascii")


# ---------------------------------------------------------------- injection helpers
def record(**entry) -> None:
    os.makedirs(OUT, exist_ok=True)
    with open(INJECTED, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")


def smtp_send(client_ip: str, helo: str, sender: str, rcpts: list[str], data: bytes, *,
              kind: str, scenario: str, account: str | None = None, notes: str = "",
              rcpt_options: list[str] | None = None, mail_options: list[str] | None = None) -> str | None:
    """One SMTP session from `client_ip`; returns the queue id Postfix answered with."""
    smtp = smtplib.SMTP(source_address=(client_ip, 0), timeout=30)
    smtp.connect(*SERVER)
    smtp.ehlo(helo)
    if account:
        smtp.login(account, PASSWORDS[account])
    code, resp = smtp.mail(sender, mail_options or [])
    accepted = []
    for rcpt in rcpts:
        rcode, _ = smtp.rcpt(rcpt, rcpt_options or [])
        if rcode < 300:
            accepted.append(rcpt)
    qid = None
    if accepted:
        code, resp = smtp.data(data)
        match = re.search(rb"queued as (\S+)", resp)
        qid = match.group(1).decode() if match else None
    smtp.quit()
    record(id=qid, kind=kind, scenario=scenario, account=account, client_ip=client_ip, helo=helo,
           sender=sender, recipients=accepted, notes=notes, via="smtp")
    return qid


def failed_auth(client_ip: str, helo: str, user: str, password: str) -> None:
    smtp = smtplib.SMTP(source_address=(client_ip, 0), timeout=30)
    smtp.connect(*SERVER)
    smtp.ehlo(helo)
    try:
        smtp.login(user, password)
    except smtplib.SMTPAuthenticationError:
        pass
    try:
        smtp.quit()
    except smtplib.SMTPException:
        pass


def local_sendmail(sender: str, data: bytes, *, kind: str, scenario: str, notes: str = "") -> None:
    """`sendmail -t` as www-data, like a PHP mail() call from a hacked web form."""
    def drop() -> None:
        os.setgid(33)
        os.setgroups([])
        os.setuid(33)
    subprocess.run(["/usr/sbin/sendmail", "-t", "-i", "-f", sender], input=data, check=True,
                   preexec_fn=drop, cwd="/tmp")
    mid = re.search(rb"^Message-ID: (\S+)", data, re.M | re.I)
    rcpts = re.search(rb"^To: (.+)$", data, re.M).group(1).decode().split(",")
    record(id=None, message_id=mid.group(1).decode() if mid else None, kind=kind, scenario=scenario,
           account=None, client_ip=None, helo=None, sender=sender,
           recipients=[r.strip() for r in rcpts], notes=notes, via="sendmail")


# ---------------------------------------------------------------- the story
OUTSIDE = ["joe@partner.example", "sam@customer.test", "kim@example.net", "lee@example.org",
           "ann@supplier.example", "max@shop.test"]
VICTIMS = [f"{name}@{dom}" for dom in ("mailbox.example", "freemail.test", "example.net",
                                       "inbox.example", "post.test", "example.org", "web.example")
           for name in ("info", "sales", "john", "maria", "admin")]


def part_short() -> None:
    # legitimate outbound/inbound from the office (authenticated)
    smtp_send("10.0.0.21", "alice-pc.office.example.com", "alice@example.com", ["joe@partner.example"],
              plain("Alice Martin <alice@example.com>", "joe@partner.example", "Quarterly figures",
                    "Hi Joe,\nthe figures are attached next week.\nAlice", msgid("a1")),
              kind="legit", scenario="outbound", account="alice")
    smtp_send("10.0.0.21", "alice-pc.office.example.com", "alice@example.com",
              ["bob@example.com", "sam@customer.test"],
              plain("Alice Martin <alice@example.com>", "bob@example.com, sam@customer.test",
                    "Meeting notes", "Notes from today.\n", msgid("a2")),
              kind="legit", scenario="outbound", account="alice", rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
              notes="bob@example.com delivered locally (D record, success in trace/); sam deferred")
    smtp_send("10.0.0.22", "bob-laptop", "bob@example.com", ["ann@supplier.example"],
              with_attachment("Bob Stone <bob@example.com>", "ann@supplier.example", "Order list (CSV)",
                              "Please find the order list attached.", msgid("b1"), "orders.csv"),
              kind="legit", scenario="outbound", account="bob", notes="multipart/mixed with base64 attachment")
    smtp_send("10.0.0.23", "carol-desk", "carol@example.com", ["kim@example.net"],
              plain("=?UTF-8?Q?Carol_M=C3=BCller?= <carol@example.com>", "kim@example.net",
                    "=?UTF-8?B?w5xiZXJzaWNodCBmw7xyIEp1bmkg4oCTIEdyw7zDn2U=?=",
                    "Grüße aus dem Büro.\n", msgid("c1")),
              kind="legit", scenario="outbound", account="carol", notes="RFC 2047 subject and name")
    smtp_send("10.0.0.23", "carol-desk", "carol@example.com", ["lee@example.org", "nobody@reject.example"],
              plain("Carol Müller <carol@example.com>", "lee@example.org, nobody@reject.example",
                    "Réunion à Zürich – ordre du jour", "Voici l'ordre du jour.\n", msgid("c2")),
              kind="legit", scenario="outbound", account="carol",
              notes="raw UTF-8 header; nobody@reject.example refused with 550 (bounce/ log), lee deferred")
    smtp_send("198.51.100.10", "mx1.partner.example", "joe@partner.example", ["sales@example.com"],
              plain("Joe Partner <joe@partner.example>", "sales@example.com", "Price request",
                    "Could you send a quote?\n", msgid("p1")),
              kind="legit", scenario="inbound",
              notes="virtual alias sales@ -> bob@example.com (delivered) + sales.team@partner.example (O record)")
    smtp_send("198.51.100.11", "mx2.partner.example", "news@partner.example", ["alice@example.com"],
              plain("Partner News <news@partner.example>", "alice@example.com", "Partner newsletter",
                    "News of the month.\n", msgid("p2")),
              kind="legit", scenario="inbound", notes="delivered locally, leaves the queue")
    # brute force before the compromise
    for ip, user, pw in [("203.0.113.50", "admin", "admin"), ("203.0.113.50", "admin", "123456"),
                         ("203.0.113.50", "scanner", "scanner"), ("203.0.113.51", "scanner", "password"),
                         ("203.0.113.51", "scanner", "1234"), ("203.0.113.51", "admin", "letmein")]:
        failed_auth(ip, "User", user, pw)
    # compromised printer account: pharmacy campaign from several addresses, forged senders
    forged = ["sales@mailbox.example", "newsletter@pharma-direct.example", "alice@example.com"]
    for n in range(12):
        ip = "203.0.113.10" if n < 8 else "203.0.113.11"
        helo = "ylmf-pc" if n < 8 else "[203.0.113.11]"
        rcpts = VICTIMS[n * 2: n * 2 + 2 + n % 2]
        sender = forged[n % len(forged)]
        smtp_send(ip, helo, sender, rcpts, pharma(f"Pharmacy <{sender}>", ", ".join(rcpts), n, msgid("s")),
                  kind="spam", scenario="compromised-account", account="scanner",
                  notes="pharmacy campaign, forged envelope sender")
    # open relay: unauthenticated outside -> outside via misconfigured mynetworks
    for n, ip in enumerate(["192.0.2.15", "192.0.2.15", "192.0.2.77", "192.0.2.77", "192.0.2.99"]):
        sender = f"promo{n}@bulk-sender.test"
        rcpts = [VICTIMS[-1 - n], VICTIMS[-8 - n]]
        smtp_send(ip, "mail.bulk-sender.test" if n < 2 else "localhost", sender, rcpts,
                  plain(f"Promo <{sender}>", ", ".join(rcpts), f"Work from home and earn ${n + 5}000 a week",
                        "Click here: http://earn.test/\n", msgid("r")),
                  kind="relay", scenario="open-relay", notes="192.0.2.0/24 wrongly in mynetworks")
    # backscatter: null-sender DSNs for spam this server never sent
    for n, ip in enumerate(["198.51.100.20", "198.51.100.21", "198.51.100.21"]):
        smtp_send(ip, f"mx{n}.bounce-host.example", "", ["info@example.com"],
                  dsn("info@example.com", "info@example.com", VICTIMS[n + 3], f"mx{n}.bounce-host.example",
                      msgid("bs")),
                  kind="backscatter", scenario="bounce",
                  notes="info@example.com is a virtual alias for helpdesk@outsourced.example (O record)")
    # web script (processed by pickup; no client attributes)
    for n in range(3):
        rcpt = VICTIMS[5 + n * 4]
        local_sendmail("www-data@example.com",
                       plain("Account Team <security@bank-login.example>", rcpt,
                             "Action required: verify your account", "Login at http://bank-login.example/\n",
                             msgid("w")),
                       kind="spam", scenario="web-script", notes="sendmail -t as www-data")
    # malformed
    smtp_send("192.0.2.77", "localhost", "x@bulk-sender.test", ["maria@inbox.example"],
              b"From: x@bulk-sender.test\r\nTo: maria@inbox.example\r\nSubject: no date, no id\r\n\r\nhello\r\n",
              kind="malformed", scenario="open-relay", notes="missing Date and Message-ID")
    smtp_send("192.0.2.77", "localhost", "y@bulk-sender.test", ["john@post.test"],
              b"From: =?utf-8?B?!!!broken?= <y@bulk-sender.test>\r\nTo: john@post.test\r\n"
              b"Subject: =?unknown-8bit?Q?caf=E9?= =?utf-8?Q?broken=?=\r\nDate: yesterday\r\n"
              b"Message-ID: not-an-id\r\n\r\nbody\r\n",
              kind="malformed", scenario="open-relay", notes="broken encoded words, bad Date and Message-ID")
    smtp_send("10.0.0.22", "bob-laptop", "bob@example.com", ["max@shop.test"],
              b"From: Bob \xe9\xe8 Stone <bob@example.com>\r\nTo: max@shop.test\r\n"
              b"Subject: caf\xe9 latin-1 raw bytes\r\nDate: " + formatdate().encode() +
              b"\r\nMessage-ID: " + msgid("m3").encode() + b"\r\nX-Long: " + b"x" * 2500 + b"\r\n\r\n" +
              b"A" * 5000 + b"\r\nshort line\r\n",
              kind="malformed", scenario="outbound", account="bob",
              notes="raw latin-1 header bytes; 2500-byte header and 5000-byte body line (split into L records)")


def part_long() -> None:
    smtp_send("10.0.0.21", "alice-pc.office.example.com", "alice@example.com", ["joe@partner.example"],
              plain("Alice Martin <alice@example.com>", "joe@partner.example", "Re: Quarterly figures",
                    "Attached as promised.\n", msgid("a4")),
              kind="legit", scenario="outbound", account="alice", mail_options=["AUTH=<alice@example.com>"],
              notes="MAIL FROM with AUTH= (sasl_sender)")
    smtp_send("10.0.0.22", "bob-laptop", "bob@example.com", ["carol@example.com", "ann@supplier.example"],
              plain("Bob Stone <bob@example.com>", "carol@example.com, ann@supplier.example", "Delivery dates",
                    "See below.\n", msgid("b2")),
              kind="legit", scenario="outbound", account="bob", notes="carol delivered locally (D)")
    smtp_send("198.51.100.10", "mx1.partner.example", "joe@partner.example", ["sales@example.com"],
              with_attachment("Joe Partner <joe@partner.example>", "sales@example.com", "Invoice 2024-117",
                              "Invoice attached.", msgid("p3"), "invoice.csv"),
              kind="legit", scenario="inbound", notes="virtual alias expansion, O record")
    smtp_send("10.0.0.21", "alice-pc.office.example.com", "alice@example.com",
              ["bob@example.com", "deals@slow.example", "nobody@reject.example"],
              plain("Alice Martin <alice@example.com>", "bob@example.com, deals@slow.example, nobody@reject.example",
                    "Re: offer",
                    "Thanks.\n", msgid("a3")),
              kind="legit", scenario="outbound", account="alice", rcpt_options=["NOTIFY=SUCCESS,FAILURE"],
              notes="slow.example is a tarpit: delivery in progress, left in active/; bob delivered (trace/ log);"
                    " nobody@reject.example refused with 550 (bounce/ log)")
    for n in range(12, 22):
        ip = ["203.0.113.12", "203.0.113.13", "203.0.113.14"][n % 3]
        helo = ["WIN-7QK2M", "printer.local", "scan"][n % 3]
        rcpts = VICTIMS[(n * 3) % 30:(n * 3) % 30 + 3]
        sender = ["promo@mailbox.example", "carol@example.com", "deals@freemail.test"][n % 3]
        smtp_send(ip, helo, sender, rcpts, pharma(f"Pharmacy <{sender}>", ", ".join(rcpts), n, msgid("s")),
                  kind="spam", scenario="compromised-account", account="scanner",
                  notes="pharmacy campaign (long queue ids, authenticated Received header)")
    failed_auth("203.0.113.52", "User", "scanner", "qwerty")
    for n, ip in enumerate(["192.0.2.15", "192.0.2.150"]):
        rcpts = [VICTIMS[10 + n], VICTIMS[20 + n]]
        smtp_send(ip, "relay-test", f"bulk{n}@bulk-sender.test", rcpts,
                  plain(f"<bulk{n}@bulk-sender.test>", ", ".join(rcpts), "Loan approved",
                        "Your loan is approved.\n", msgid("r")),
                  kind="relay", scenario="open-relay", notes="192.0.2.0/24 wrongly in mynetworks")
    smtp_send("198.51.100.22", "mail.bounce-host.example", "", ["info@example.com"],
              dsn("info@example.com", "info@example.com", VICTIMS[9], "mail.bounce-host.example", msgid("bs")),
              kind="backscatter", scenario="bounce", notes="null-sender DSN to info@ (virtual alias, O record)")
    local_sendmail("www-data@example.com",
                   plain("Account Team <security@bank-login.example>", VICTIMS[26],
                         "Action required: verify your account", "Login at http://bank-login.example/\n",
                         msgid("w")),
                   kind="spam", scenario="web-script", notes="sendmail -t as www-data")


def part_incoming() -> None:
    for n in range(2):
        rcpts = VICTIMS[n * 5:n * 5 + 2]
        smtp_send("203.0.113.14", "scan", "promo@mailbox.example", rcpts,
                  pharma("Pharmacy <promo@mailbox.example>", ", ".join(rcpts), 30 + n, msgid("s")),
                  kind="spam", scenario="compromised-account", account="scanner",
                  notes="qmgr removed from master.cf: left in incoming/")


def part_maildrop() -> None:
    for n in range(2):
        local_sendmail("www-data@example.com",
                       plain("Account Team <security@bank-login.example>", VICTIMS[1 + n * 7],
                             "Action required: verify your account", "Login at http://bank-login.example/\n",
                             msgid("w")),
                       kind="spam", scenario="web-script", notes="pickup removed: left in maildrop/")


def inflight() -> None:
    """Half a DATA phase, then wait for /root/out/inflight.done: cleanup's file is still 0600."""
    smtp = smtplib.SMTP(source_address=("203.0.113.14", 0), timeout=600)
    smtp.connect(*SERVER)
    smtp.ehlo("scan")
    smtp.login("scanner", PASSWORDS["scanner"])
    smtp.mail("promo@mailbox.example")
    smtp.rcpt("maria@web.example")
    smtp.putcmd("data")
    smtp.getreply()
    smtp.send(b"From: Pharmacy <promo@mailbox.example>\r\nTo: maria@web.example\r\n"
              b"Subject: Cheap meds (in flight)\r\n\r\n" + b"pills " * 2000 + b"\r\n")
    record(id=None, kind="spam", scenario="compromised-account", account="scanner", client_ip="203.0.113.14",
           helo="scan", sender="promo@mailbox.example", recipients=["maria@web.example"], via="inflight",
           notes="DATA still in progress when the spool was copied: incoming file mode 0600 (incomplete)")
    open(f"{OUT}/inflight.ready", "w").close()
    for _ in range(600):
        if os.path.exists(f"{OUT}/inflight.done"):
            break
        time.sleep(0.5)
    smtp.close()


def _rejecting_server(srv: socket.socket) -> None:
    """A remote MX that refuses every recipient permanently (550 5.1.1)."""
    while True:
        conn, _ = srv.accept()
        fh = conn.makefile("rb")
        conn.sendall(b"220 mx.reject.example ESMTP\r\n")
        for line in fh:
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250 mx.reject.example\r\n")
            elif verb == b"RCPT":
                conn.sendall(b"550 5.1.1 <" + line.split(b"<", 1)[-1].split(b">")[0] +
                             b">: Recipient address rejected: User unknown in local recipient table\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 Bye\r\n")
                break
            else:
                conn.sendall(b"250 Ok\r\n")
        conn.close()


def tarpit() -> None:
    """127.0.0.1:2526 accepts and never greets; 127.0.0.1:2527 rejects every recipient."""
    import threading
    rejecting = socket.socket()
    rejecting.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rejecting.bind(("127.0.0.1", 2527))
    rejecting.listen(16)
    threading.Thread(target=_rejecting_server, args=(rejecting,), daemon=True).start()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 2526))
    srv.listen(16)
    held = []
    while True:
        conn, _ = srv.accept()
        held.append(conn)  # never greet


def manifest() -> None:
    """Join injected.jsonl with mail.log and the listing into manifest.jsonl."""
    log = open("/var/log/mail.log", encoding="utf-8", errors="replace").read()
    by_mid = {}
    for qid, mid in re.findall(r"postfix/cleanup\[\d+\]: (\w+): message-id=(\S+)", log):
        by_mid[mid] = qid  # the last cleanup wins (pickup re-cleans maildrop files)
    listing = [json.loads(line) for line in open(f"{OUT}/listing.jsonl", encoding="utf-8") if line.strip()]
    queued = {entry["queue_id"]: entry for entry in listing}
    out = []
    seen = set()
    for line in open(INJECTED, encoding="utf-8"):
        entry = json.loads(line)
        entry["_mid"] = entry.pop("message_id", None)
        qid = entry.get("id") or by_mid.get(entry["_mid"] or "")
        via = entry.pop("via")
        if via == "inflight":
            smtpd_ids = re.findall(r"postfix/smtpd\[\d+\]: (\w+): client=\S+\[203\.0\.113\.14\]", log)
            qid = smtpd_ids[-1] if smtpd_ids else None
        if qid is None and via == "sendmail" and entry.get("_mid"):
            for name in sorted(os.listdir("/var/spool/postfix/maildrop")):
                with open(f"/var/spool/postfix/maildrop/{name}", "rb") as fh:
                    if entry["_mid"].encode() in fh.read():
                        qid = name
        entry.pop("_mid", None)
        entry["id"] = qid
        entry["queue"] = queued[qid]["queue_name"] if qid in queued else None
        if qid and entry["queue"] is None:
            entry["notes"] = (entry["notes"] + "; " if entry["notes"] else "") + "not in the listing (delivered, bounced or only on disk)"
        seen.add(qid)
        out.append(entry)
    for qid, item in queued.items():
        if qid in seen:
            continue
        sender = "" if item["sender"] == "MAILER-DAEMON" else item["sender"]  # showq's empty_address_recipient
        out.append(dict(id=qid, kind="backscatter" if sender == "" else "legit", scenario="bounce",
                        account=None, client_ip=None, helo=None, sender=sender,
                        recipients=[r["address"] for r in item["recipients"]], queue=item["queue_name"],
                        notes="made by this Postfix (DSN after postsuper -f on forged-sender spam)"))
    with open(f"{OUT}/manifest.jsonl", "w", encoding="utf-8") as fh:
        for entry in out:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")


def postcat_oracle() -> None:
    """sha256 of `postcat -bh` for every queue file of the copied spool (argv[2])."""
    import hashlib
    os.chdir(sys.argv[2])
    out = {}
    for queue in ("active", "deferred", "hold", "incoming", "maildrop", "corrupt"):
        for base, _dirs, files in os.walk(queue):
            for name in sorted(files):
                rel = os.path.join(base, name)
                done = subprocess.run(["postcat", "-bh", rel], capture_output=True)
                out[rel] = {"exit": done.returncode, "sha256": hashlib.sha256(done.stdout).hexdigest(),
                            "length": len(done.stdout)}
    print(json.dumps(dict(sorted(out.items())), indent=1))


if __name__ == "__main__":
    steps = {"postcat": postcat_oracle, "short": part_short, "long": part_long, "incoming": part_incoming, "maildrop": part_maildrop,
             "inflight": inflight, "tarpit": tarpit, "manifest": manifest}
    steps[sys.argv[1]]()

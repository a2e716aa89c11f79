#!/usr/bin/env python3
"""Feed the shared incident story to a real Exim (run inside the chroot + netns).

Usage (see generate.sh):
    inject.py phase-a      mail that the first queue runs will see (deliveries, defers, bounces)
    inject.py phase-b      mail that arrives after the queue runs (still queued, first attempt)
    inject.py serve        a fake next hop on 127.0.0.2:2525 answering 451/550 per recipient
    inject.py tarpit       a next hop that accepts the connection and never answers
    inject.py manifest     join injected.jsonl with the final spool -> manifest.jsonl

Every submitted message is appended to /root/injected.jsonl with the Exim id taken from
the "250 OK id=..." answer (SMTP) or from the new -H file (local sendmail). Only stdlib.
"""
from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate

SERVER = ("127.0.0.1", 25)
SPOOL_INPUT = "/var/spool/exim4/input"
LOG = "/root/injected.jsonl"
PASSWORDS = {"alice": "Wonderland-42", "bob": "Builder#2024", "carol": "Carol!Singer9", "scanner": "scan1234"}

# ---------------------------------------------------------------- message templates

PHARMA_SUBJECTS = [
    "Cheap meds without prescription - 80% off",
    "Your order #{n} of V1agra is ready",
    "Best pharmacy deals this week only",
    "Re: your prescription refill",
    "C1alis & more - discreet shipping",
    "Save big on pills - limited offer",
]
PHARMA_BODY = """Hello {name},

Best online pharmacy - no prescription needed!
Viagra from $0.99, Cialis from $1.20, worldwide discreet shipping.

Order now: http://pharma-deals.example/r/{n}

To unsubscribe reply with REMOVE.
"""
RELAY_BODY = """Dear friend,

I am Barrister James Okoro, I have a business proposal of USD 12,500,000 for you.
Reply to this address for details: {n}

Regards
"""


def smtp_session(client_ip: str, helo: str) -> smtplib.SMTP:
    s = smtplib.SMTP(local_hostname=helo, source_address=(client_ip, 0), timeout=30)
    s.connect(*SERVER)
    s.ehlo(helo)
    return s


def record(entry: dict) -> None:
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")


def send_smtp(client_ip: str, helo: str, sender: str, rcpts: list[str], data: bytes, *, kind: str,
              scenario: str, account: str | None = None, password: str | None = None,
              mech: str = "PLAIN", mail_auth: str | None = None, notes: str = "") -> str | None:
    """One SMTP transaction; returns the Exim id (from '250 OK id=...') or None if refused."""
    s = smtp_session(client_ip, helo)
    try:
        if account:
            s.user, s.password = account, password or PASSWORDS[account]
            auth = s.auth_plain if mech == "PLAIN" else s.auth_login
            s.auth(mech, auth, initial_response_ok=(mech == "PLAIN"))
        opts = [f"AUTH=<{mail_auth}>"] if mail_auth is not None else []
        code, resp = s.mail(sender, opts)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, resp, sender)
        accepted = []
        for r in rcpts:
            code, resp = s.rcpt(r)
            if code in (250, 251):
                accepted.append(r)
            else:
                print(f"  rcpt {r} refused: {code} {resp!r}", file=sys.stderr)
        if not accepted:
            s.rset()
            return None
        code, resp = s.data(data)
        text = resp.decode("ascii", "replace")
        qid = text.split("id=", 1)[1].split()[0] if "id=" in text else None
        if code != 250:
            print(f"  DATA refused: {code} {text}", file=sys.stderr)
            qid = None
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass
    record({"id": qid, "kind": kind, "scenario": scenario, "account": account, "client_ip": client_ip,
            "helo": helo, "sender": sender, "recipients": accepted, "notes": notes})
    print(f"  {qid} {kind}/{scenario} {sender} -> {accepted}", file=sys.stderr)
    return qid


def failed_auth(client_ip: str, helo: str, user: str, password: str, mech: str = "LOGIN") -> None:
    s = smtp_session(client_ip, helo)
    try:
        s.user, s.password = user, password
        auth = s.auth_plain if mech == "PLAIN" else s.auth_login
        s.auth(mech, auth, initial_response_ok=(mech == "PLAIN"))
    except smtplib.SMTPAuthenticationError:
        pass
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def spool_ids() -> set[str]:
    found = set()
    for dirpath, _dirs, files in os.walk(SPOOL_INPUT):
        found.update(f[:-2] for f in files if f.endswith("-H"))
    return found


def send_local(user: str, raw: bytes, args: list[str], *, kind: str, scenario: str, sender: str,
               rcpts: list[str], notes: str = "") -> str | None:
    """Submit through /usr/sbin/sendmail as `user` (no SMTP, no login): the web-script case."""
    before = spool_ids()
    subprocess.run(["su", "-s", "/bin/sh", user, "-c", "/usr/sbin/sendmail " + " ".join(args)],
                   input=raw, check=True)
    new = sorted(spool_ids() - before)
    qid = new[-1] if new else None
    record({"id": qid, "kind": kind, "scenario": scenario, "account": None, "client_ip": None,
            "helo": None, "sender": sender, "recipients": rcpts, "notes": notes, "local_user": user})
    print(f"  {qid} {kind}/{scenario} (local {user}) -> {rcpts}", file=sys.stderr)
    return qid


def msg(frm: str, to: list[str], subject: str, body: str, *, cc: list[str] | None = None,
        extra: dict[str, str] | None = None, attachment: tuple[str, bytes, str] | None = None,
        html: str | None = None, msgid: str | None = None, when: float | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = frm
    m["To"] = ", ".join(to)
    if cc:
        m["Cc"] = ", ".join(cc)
    m["Subject"] = subject
    m["Date"] = formatdate(when or time.time(), localtime=False)
    m["Message-ID"] = msgid or f"<{time.time_ns()}.{os.getpid()}@{frm.split('@')[-1].strip('>')}>"
    for key, value in (extra or {}).items():
        m[key] = value
    m.set_content(body)
    if html:
        m.add_alternative(html, subtype="html")
    if attachment:
        name, payload, ctype = attachment
        maintype, subtype = ctype.split("/")
        m.add_attachment(payload, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes()


def dsn(reporting_mta: str, original_rcpt: str, forged_from: str, subject: str, n: int) -> bytes:
    """A null-sender multipart/report DSN for spam this server never sent (backscatter)."""
    boundary = f"=_dsn_{n}_{int(time.time())}"
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>\n"
        f"To: {forged_from}\n"
        f"Subject: Undelivered Mail Returned to Sender\n"
        f"Date: {formatdate(time.time())}\n"
        f"Message-ID: <dsn.{n}.{time.time_ns()}@{reporting_mta}>\n"
        f"Auto-Submitted: auto-replied\n"
        f"MIME-Version: 1.0\n"
        f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\n\n"
        f"--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n"
        f"This is the mail system at host {reporting_mta}.\n\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\n\n"
        f"<{original_rcpt}>: host {reporting_mta} said: 550 5.1.1 User unknown\n\n"
        f"--{boundary}\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; {reporting_mta}\n\n"
        f"Final-Recipient: rfc822; {original_rcpt}\nAction: failed\nStatus: 5.1.1\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{original_rcpt}>: Recipient address rejected\n\n"
        f"--{boundary}\nContent-Type: text/rfc822-headers\n\n"
        f"From: {forged_from}\nTo: {original_rcpt}\nSubject: {subject}\n\n"
        f"--{boundary}--\n"
    ).encode()


# ---------------------------------------------------------------- the story

OFFICE = {"alice": "10.0.0.11", "bob": "10.0.0.12", "carol": "10.0.0.13"}
HELO = {"alice": "alice-pc.office.example.com", "bob": "bob-laptop", "carol": "CAROL-WS01"}
PARTNERS = [("198.51.100.10", "mx1.partner.example"), ("198.51.100.11", "mx2.partner.example")]
SCANNER_IPS = [("203.0.113.50", "printer"), ("203.0.113.77", "HP-MFP-M527"), ("203.0.113.99", "ylmf-pc"),
               ("203.0.113.143", "[203.0.113.143]")]
RELAY_IPS = [("192.0.2.15", "relay-test.example"), ("192.0.2.44", "win-7h2k1"), ("192.0.2.201", "localhost")]
OUTSIDE = ["gmail.example", "yahoo.example", "mail.ru.example", "web.de.example", "freenet.test",
           "aol.example", "hotmail.test", "t-online.example", "orange.test", "libero.example",
           "example.net", "example.org", "uni-bonn.test", "wanadoo.example"]
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" * 40


def legit_outbound(phase: str) -> None:
    if phase == "a":
        send_smtp(OFFICE["alice"], HELO["alice"], "alice@example.com",
                  ["j.smith@example.net", "bob@example.com"],
                  msg("Alice Example <alice@example.com>", ["j.smith@example.net"], "Quarterly figures Q3",
                      "Hi John,\n\nattached are the Q3 figures.\n\nAlice\n", cc=["bob@example.com"],
                      attachment=("Q3-figures.pdf", PDF, "application/pdf")),
                  kind="legit", scenario="outbound", account="alice", mail_auth="alice@example.com",
                  notes="attachment; bob delivered locally, example.net deferred")
        send_smtp(OFFICE["bob"], HELO["bob"], "bob@example.com", ["orders@supplier.example"],
                  msg("Bob Builder <bob@example.com>", ["orders@supplier.example"],
                      "Order 4711 – Lieferung nächste Woche?",
                      "Hallo,\n\nkönnen Sie die Bestellung 4711 nächste Woche liefern?\n\nGrüße\nBob\n",
                      html="<p>Hallo,</p><p>k&ouml;nnen Sie die Bestellung <b>4711</b> liefern?</p>"),
                  kind="legit", scenario="outbound", account="bob", mech="LOGIN",
                  notes="multipart/alternative, RFC 2047 subject")
        send_smtp(OFFICE["carol"], HELO["carol"], "carol@example.com",
                  ["anna@example.org", "alice@example.com", "dieter@uni-bonn.test"],
                  msg("=?utf-8?q?Carol_S=C3=A4ngerin?= <carol@example.com>",
                      ["anna@example.org", "dieter@uni-bonn.test"], "Réunion du comité – ordre du jour",
                      "Bonjour,\n\nvoici l'ordre du jour.\n\nCarol\n", cc=["alice@example.com"]),
                  kind="legit", scenario="outbound", account="carol",
                  notes="non-ASCII display name and subject; alice delivered locally")
        send_smtp(OFFICE["alice"], HELO["alice"], "alice@example.com", ["bob@example.com", "carol@example.com"],
                  msg("alice@example.com", ["bob@example.com", "carol@example.com"], "Lunch?", "12:30 downstairs?\n"),
                  kind="legit", scenario="internal", account="alice", notes="all local: delivered, leaves the queue")
        send_smtp(OFFICE["bob"], HELO["bob"], "bob@example.com", ["accounting@bank.example"],
                  msg("bob@example.com", ["accounting@bank.example"], "Invoice 2024-118",
                      "Please find the invoice attached.\n", attachment=("invoice-2024-118.pdf", PDF[:900], "application/pdf")),
                  kind="legit", scenario="outbound", account="bob")
    else:
        send_smtp(OFFICE["carol"], HELO["carol"], "carol@example.com", ["press@news.example"],
                  msg("carol@example.com", ["press@news.example"], "Pressemitteilung: Jubiläum",
                      "Sehr geehrte Damen und Herren,\n\nanbei unsere Pressemitteilung.\n",
                      attachment=("pm.txt", "Jubiläum 25 Jahre\n".encode(), "text/plain")),
                  kind="legit", scenario="outbound", account="carol")
        raw_utf8 = ("From: Alice Example <alice@example.com>\nTo: kenji@example.org\n"
                    "Subject: 会議の件 – meeting next week\nDate: " + formatdate(time.time()) +
                    "\nMessage-ID: <utf8.1@example.com>\nMIME-Version: 1.0\n"
                    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                    "来週の会議についてです。\n").encode("utf-8")
        send_smtp(OFFICE["alice"], HELO["alice"], "alice@example.com", ["kenji@example.org", "bob@example.com"], raw_utf8,
                  kind="legit", scenario="outbound", account="alice", mail_auth="alice@example.com",
                  notes="raw UTF-8 subject (8-bit header)")
        send_smtp(OFFICE["bob"], HELO["bob"], "bob@example.com",
                  ["team@partner.example", "lead@partner.example", "carol@example.com"],
                  msg("bob@example.com", ["team@partner.example", "lead@partner.example"], "Project plan v2",
                      "Updated plan attached.\n", cc=["carol@example.com"],
                      attachment=("plan.csv", b"task,owner,due\nspec,bob,2024-05-01\n", "text/csv")),
                  kind="legit", scenario="outbound", account="bob",
                  notes="queued after the queue runs; used for the -J crash simulation")


def legit_inbound(phase: str) -> None:
    items = [
        ("a", 0, "partner-news@partner.example", ["alice@example.com"], "Partner newsletter May"),
        ("a", 1, "j.smith@example.net", ["alice@example.com"], "Re: Quarterly figures Q3"),
        ("b", 0, "support@partner.example", ["bob@example.com", "carol@example.com"], "Ticket #5521 update"),
        ("b", 1, "anna@example.org", ["carol@example.com"], "Re: Réunion du comité"),
        ("b", 0, "billing@partner.example", ["accounting@example.com"], "Invoice reminder"),
        ("b", 1, "hr@partner.example", ["alice@example.com"], "Übergabe der Unterlagen"),
    ]
    for when, p, sender, rcpts, subject in items:
        if when != phase:
            continue
        ip, helo = PARTNERS[p]
        send_smtp(ip, helo, sender, rcpts,
                  msg(sender, rcpts, subject, "Hello,\n\nsee below.\n\n-- \nPartner\n",
                      extra={"X-Spam-Status": "No, score=-1.0", "X-Spam-Flag": "NO"}),
                  kind="legit", scenario="inbound",
                  notes="partner-set X-Spam-* headers removed by the data ACL (kept as '*' headers)")


def brute_force() -> None:
    for ip, helo in SCANNER_IPS[:2]:
        for pw in ("123456", "password", "scanner", "admin"):
            failed_auth(ip, helo, "scanner", pw)
        failed_auth(ip, helo, "admin", "admin", mech="PLAIN")
        failed_auth(ip, helo, "administrator", "Passw0rd")
    print("  failed AUTH attempts done", file=sys.stderr)


def campaign(start: int, count: int, ips: list[tuple[str, str]]) -> None:
    forged = ["promo@pharma-deals.example", "alice@example.com", "noreply@secure-pharmacy.test",
              "sales@example.com", "info@rx-online.example"]
    for i in range(start, start + count):
        ip, helo = ips[i % len(ips)]
        n = 1000 + i * 37
        sender = forged[i % len(forged)]
        nrcpt = 3 + (i * 5) % 6
        rcpts = [f"user{(i * 7 + k) % 97}@{OUTSIDE[(i + k * 3) % len(OUTSIDE)]}" for k in range(nrcpt)]
        if i % 4 == 1:
            rcpts[0] = f"nosuchuser{i}@{OUTSIDE[i % len(OUTSIDE)]}"  # the fake next hop answers 550 -> bounce
        subject = PHARMA_SUBJECTS[i % len(PHARMA_SUBJECTS)].format(n=n)
        body = PHARMA_BODY.format(name=rcpts[0].split("@")[0], n=n)
        mail_auth = "" if i % 3 == 0 else None
        send_smtp(ip, helo, sender, rcpts,
                  msg(f"Online Pharmacy <{sender}>", rcpts[:1], subject, body,
                      extra={"X-Mailer": "Microsoft Outlook Express 6.00.2600.0000"}),
                  kind="spam", scenario="compromised-account", account="scanner", mail_auth=mail_auth,
                  notes="pharmacy campaign; forged sender" + ("; MAIL AUTH=<>" if mail_auth == "" else ""))


def open_relay(start: int, count: int) -> None:
    for i in range(start, start + count):
        ip, helo = RELAY_IPS[i % len(RELAY_IPS)]
        sender = f"barrister{i}@lawfirm-intl.example"
        rcpts = [f"victim{i}@{OUTSIDE[(i * 5) % len(OUTSIDE)]}", f"target{i}@{OUTSIDE[(i * 5 + 2) % len(OUTSIDE)]}"]
        send_smtp(ip, helo, sender, rcpts,
                  msg(f"James Okoro <{sender}>", rcpts, "URGENT BUSINESS PROPOSAL", RELAY_BODY.format(n=i)),
                  kind="relay", scenario="open-relay",
                  notes="unauthenticated outside->outside; 192.0.2.0/24 is in relay_from_hosts")


def web_script(start: int, count: int) -> None:
    for i in range(start, start + count):
        rcpts = [f"customer{i}@{OUTSIDE[(i * 3) % len(OUTSIDE)]}", f"lead{i}@{OUTSIDE[(i * 3 + 1) % len(OUTSIDE)]}"]
        bcc = f"list{i}@{OUTSIDE[(i * 3 + 5) % len(OUTSIDE)]}"
        raw = msg("\"Account Security\" <security@paypa1-verify.example>", rcpts,
                  "Your account has been limited", "Please verify your account: http://paypa1-verify.example/login\n",
                  extra={"Bcc": bcc, "X-PHP-Originating-Script": "33:contact-form.php"})
        send_local("www-data", raw, ["-t", "-i"], kind="spam", scenario="web-script",
                   sender="www-data@example.com", rcpts=rcpts + [bcc],
                   notes="sendmail -t as www-data from a compromised PHP form; Bcc kept as deleted header")


def backscatter(count: int) -> None:
    reporters = [("198.51.100.77", "mx.victim-isp.example"), ("198.51.100.10", "mx1.partner.example")]
    targets = ["alice@example.com", "sales@example.com", "bob@example.com"]
    for i in range(count):
        ip, helo = reporters[i % len(reporters)]
        forged = targets[i % len(targets)]
        send_smtp(ip, helo, "", [forged],
                  dsn(helo, f"user{i}@{OUTSIDE[i % len(OUTSIDE)]}", forged, "Cheap meds", i),
                  kind="backscatter", scenario="bounce",
                  notes="null-sender DSN for spam that forged our address")


def malformed() -> None:
    ip, helo = "198.51.100.77", "mx.victim-isp.example"
    cases = [
        (b"From: someone@example.net\nTo: alice@example.com\nSubject: no date, no message-id\n\nbody\n",
         "missing Date and Message-ID"),
        (b"From: =?utf-8?B?broken-base64!!?= <x@example.net>\nTo: bob@example.com\n"
         b"Subject: =?unknown-8bit?Q?=E9t=E9?= and =?utf-8?q?unterminated\nDate: Mon, 32 Foo 2024 99:99:99\n"
         b"Message-ID: <broken@@example.net>\n\nbody\n", "broken encoded words and a bad Date"),
        (b"From: Ren\xe9 <rene@example.net>\nTo: carol@example.com\nSubject: Caf\xe9 cr\xe8me (latin-1 raw)\n"
         b"Message-ID: <latin1.1@example.net>\n\nbody \xe9\n", "raw 8-bit latin-1 header bytes"),
        (b"From: longline@example.net\nTo: alice@example.com\nSubject: long line\nMessage-ID: <long.1@example.net>\n\n"
         + b"A" * 5000 + b"\n", "5000-byte body line"),
        (b"From: x@example.net\nTo: bob@example.com\nSubject: " + b"very long subject " * 120 + b"\n\nbody\n",
         "2000-byte unfolded Subject line"),
        (b"To: carol@example.com\nSubject: no From at all\nX-Weird-Header:\n  \n\n\nbody after blank lines\n",
         "missing From; empty folded header"),
    ]
    rcpt_of = {b"alice": "alice@example.com", b"bob": "bob@example.com", b"carol": "carol@example.com"}
    for raw, note in cases:
        to = raw.split(b"To: ", 1)[1].split(b"@", 1)[0]
        send_smtp(ip, helo, "sender@example.net", [rcpt_of[to]], raw, kind="malformed", scenario="inbound", notes=note)


def phase_a() -> None:
    legit_outbound("a")
    legit_inbound("a")
    brute_force()
    campaign(0, 14, SCANNER_IPS[:3])
    open_relay(0, 5)
    web_script(0, 3)


def phase_b() -> None:
    legit_outbound("b")
    legit_inbound("b")
    campaign(14, 10, SCANNER_IPS[2:])
    open_relay(5, 4)
    web_script(3, 3)
    backscatter(6)
    malformed()


# ---------------------------------------------------------------- fake next hops

def serve(addr: tuple[str, int] = ("127.0.0.2", 2525)) -> None:
    """A next hop that never accepts mail: 550 nosuchuser*, 451 greylisting *.test, else 421."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(addr)
    srv.listen(20)
    while True:
        conn, _ = srv.accept()
        f = conn.makefile("rb")
        rcpts_seen = 0
        try:
            conn.sendall(b"220 mx.remote.example ESMTP\r\n")
            for line in f:
                cmd = line.strip().upper()
                if cmd.startswith((b"EHLO", b"HELO")):
                    conn.sendall(b"250-mx.remote.example\r\n250 8BITMIME\r\n")
                elif cmd.startswith(b"MAIL"):
                    rcpts_seen = 0
                    conn.sendall(b"250 2.1.0 Ok\r\n")
                elif cmd.startswith(b"RCPT"):
                    rcpts_seen += 1
                    addr = line.split(b"<", 1)[-1].split(b">")[0]
                    if b"NOSUCHUSER" in cmd:
                        conn.sendall(b"550 5.1.1 <" + addr + b">: Recipient address rejected: User unknown\r\n")
                    elif cmd.rstrip(b">").endswith(b".TEST"):
                        conn.sendall(b"451 4.7.1 <" + addr + b">: Recipient address rejected: Greylisted, try again later\r\n")
                    elif rcpts_seen > 1:
                        conn.sendall(b"450 4.2.0 <" + addr + b">: Recipient address rejected: Mailbox busy\r\n")
                    else:
                        conn.sendall(b"421 4.7.0 mx.remote.example Too many connections from your host, closing\r\n")
                        break
                elif cmd.startswith(b"QUIT"):
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    break
                elif cmd.startswith(b"RSET"):
                    conn.sendall(b"250 2.0.0 Ok\r\n")
                else:
                    conn.sendall(b"554 5.5.1 Error: no valid recipients\r\n")
        except OSError:
            pass
        finally:
            f.close()
            conn.close()


def tarpit(addr: tuple[str, int] = ("127.0.0.2", 2525)) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(addr)
    srv.listen(5)
    held = []
    while True:
        conn, _ = srv.accept()
        held.append(conn)  # never answer


# ---------------------------------------------------------------- manifest

def read_h(path: str) -> tuple[str, list[str], bool, bool]:
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    sender = lines[2].decode().strip("<>")
    frozen = any(l.startswith(b"-frozen ") for l in lines[:80])
    localerror = any(l == b"-localerror" for l in lines[:80])
    return sender, [], frozen, localerror


def manifest(out: str) -> None:
    injected = [json.loads(l) for l in open(LOG, encoding="utf-8") if l.strip()]
    by_id = {e["id"]: e for e in injected if e["id"]}
    present: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(SPOOL_INPUT):
        for f in files:
            if f.endswith("-H"):
                present[f[:-2]] = os.path.join(dirpath, f)
    with open(out, "w", encoding="utf-8") as fh:
        for qid in sorted(present):
            sender, _, frozen, localerror = read_h(present[qid])
            entry = by_id.get(qid)
            if entry is None:
                entry = {"kind": "backscatter" if localerror else "legit",
                         "scenario": "bounce" if localerror else "unknown", "account": None, "client_ip": None,
                         "helo": None, "sender": sender, "recipients": [],
                         "notes": "bounce generated by this Exim for spam it relayed (550 from next hop)"
                         if localerror else "generated by Exim"}
            line = {"id": qid, "kind": entry["kind"], "scenario": entry["scenario"], "account": entry["account"],
                    "client_ip": entry["client_ip"], "sender": entry["sender"], "recipients": entry["recipients"],
                    "queue": "frozen" if frozen else "queued", "notes": entry["notes"]}
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    gone = [e for e in injected if e["id"] and e["id"] not in present]
    print(f"manifest: {len(present)} queued, {len(gone)} injected messages left the queue (delivered)", file=sys.stderr)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "phase-a":
        phase_a()
    elif what == "phase-b":
        phase_b()
    elif what == "serve":
        serve()
    elif what == "tarpit":
        tarpit()
    elif what == "manifest":
        manifest(sys.argv[2])
    else:
        sys.exit(__doc__)

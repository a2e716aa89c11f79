#!/usr/bin/env python3
"""Build corpora/exchange2003: a copied Exchange 2003 server tree, byte by byte.

No Exchange 2003 can run here, so the files are written from the documented formats
and public samples (research/exchange-formats.md); README.md lists what is documented
and what is assumed. Deterministic: re-running gives identical bytes.

    spool/Program Files/Exchsrvr/Mailroot/vsi 1/{Queue,PickUp,BadMail}   (Exchange VS 1)
    spool/Program Files/Exchsrvr/Mailroot/vsi 2/Queue                      (VS 2, inbound)
    spool/Inetpub/mailroot/{Drop,Queue}                                   (IIS-only SMTP)
    spool/WINDOWS/system32/LogFiles/SMTPSVC1/ex261126.log                 (W3C, VS 1)
    spool/WINDOWS/system32/LogFiles/SMTPSVC2/ex261126.log                 (W3C, VS 2)
    spool/EventLogs/Application.csv, Application.txt, Security.csv        (Event Viewer exports)

Run: python3 corpora/exchange2003/generate.py   (rewrites spool/, files.json, manifest.jsonl)
"""
from __future__ import annotations

import base64
import calendar
import datetime as dt
import hashlib
import json
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPOOL = HERE / "spool"
VSI1 = "Program Files/Exchsrvr/Mailroot/vsi 1"
VSI2 = "Program Files/Exchsrvr/Mailroot/vsi 2"
IIS = "Inetpub/mailroot"
SERVER = "mail.example.com"
COMPUTER = "MAIL"
SERVER_IP = "10.0.0.5"
BUILD = "6.0.3790.4675"
DOMAIN = "EXAMPLE"
DAY = dt.datetime(2026, 11, 26, tzinfo=dt.timezone.utc)

files_meta: dict[str, dict] = {}
manifest: list[dict] = []
w3c: dict[str, list[tuple[dt.datetime, str]]] = {"SMTPSVC1": [], "SMTPSVC2": []}
events: list[dict] = []
security: list[dict] = []


def at(hour: int, minute: int, second: int = 0, ms: int = 0) -> dt.datetime:
    return DAY + dt.timedelta(hours=hour, minutes=minute, seconds=second, milliseconds=ms)


def rfc2822(when: dt.datetime) -> str:
    return f"{when.strftime('%a')}, {when.day} {when.strftime('%b %Y %H:%M:%S')} +0000"


def filetime(when: dt.datetime) -> str:
    ticks = int((when.timestamp() * 10_000_000)) + 116_444_736_000_000_000
    return f"{when.strftime('%d %b %Y %H:%M:%S')}.{when.microsecond // 1000:04d} (UTC) FILETIME=[{ticks & 0xFFFFFFFF:08X}:{ticks >> 32:08X}]"


def ntfs_name(seed: str) -> str:
    return "NTFS_" + hashlib.sha1(seed.encode()).hexdigest()[:16].upper()


def write(rel: str, data: bytes, when: dt.datetime) -> None:
    path = SPOOL / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    files_meta[rel] = {"mtime": float(calendar.timegm(when.utctimetuple())), "mode": 0o644}


def crlf(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def received_smtpsvc(helo: str, ip: str, when: dt.datetime, by: str = SERVER) -> str:
    return (f"Received: from {helo} ([{ip}]) by {by} with Microsoft SMTPSVC({BUILD});\r\n"
            f"\t {rfc2822(when)}")


def message(headers: list[str], body: list[str]) -> bytes:
    return crlf(headers + [""] + body)


def add_w3c(instance: str, when: dt.datetime, ip: str, user: str, method: str, query: str, status: int,
            bytes_out: int = 0, bytes_in: int = 0, taken: int = 0) -> None:
    site = instance
    line = (f"{when.strftime('%Y-%m-%d %H:%M:%S')} {ip} {user} {site} {COMPUTER} {SERVER_IP} 0 {method} - "
            f"{query} {status} 0 {bytes_out} {bytes_in} {taken} SMTP - - - -")
    w3c[instance].append((when, line))


def smtp_session(instance: str, start: dt.datetime, ip: str, helo: str, *, auth: str | None,
                 sender: str, recipients: list[str], message_id: str, denied: list[str] = (),
                 ehlo: bool = True) -> dt.datetime:
    """W3C lines (and Event 1708) for one inbound SMTP session; returns the DATA time."""
    t = start
    add_w3c(instance, t, ip, helo, "EHLO" if ehlo else "HELO", f"+{helo}", 250, 0, len(helo) + 5)
    if auth is not None:
        t += dt.timedelta(seconds=1)
        add_w3c(instance, t, ip, helo, "AUTH", "+LOGIN", 235, 0, 12)
        events.append({"when": t, "type": "Information", "source": "MSExchangeTransport",
                       "category": "SMTP Protocol", "id": 1708, "user": "N/A",
                       "text": (f"SMTP authentication was completed successfully with client {ip}. "
                                f"The authentication method was Login and the username was {DOMAIN}\\{auth}.")})
    t += dt.timedelta(seconds=1)
    add_w3c(instance, t, ip, helo, "MAIL", f"+FROM:+<{sender}>", 250, 0, len(sender) + 12)
    for rcpt in recipients:
        add_w3c(instance, t, ip, helo, "RCPT", f"+TO:+<{rcpt}>", 250, 0, len(rcpt) + 10)
    for rcpt in denied:
        add_w3c(instance, t, ip, helo, "RCPT", f"+TO:+<{rcpt}>", 550, 0, len(rcpt) + 10)
    t += dt.timedelta(seconds=2)
    data_time = t
    add_w3c(instance, t, ip, helo, "DATA", f"+{message_id}" if message_id else "-", 250, 0, 1400, 900)
    t += dt.timedelta(seconds=1)
    add_w3c(instance, t, ip, helo, "QUIT", helo, 240, 2200, 70, 3100)
    return data_time


def queue_file(rel_dir: str, seed: str, data: bytes, when: dt.datetime, truth: dict) -> str:
    name = ntfs_name(seed)
    write(f"{rel_dir}/{name}.EML", data, when)
    manifest.append({"id": name, **truth})
    return name


def truth(kind: str, scenario: str, account, client_ip, sender, recipients, queue, notes="") -> dict:
    return {"kind": kind, "scenario": scenario, "account": account, "client_ip": client_ip,
            "sender": sender, "recipients": recipients, "queue": queue, "notes": notes}


# ------------------------------------------------------------------ the story

def legit_outbound() -> None:
    people = [
        ("alice", "Alice Example", "10.0.0.21", "ALICE-PC", ["partner1@partner.example"],
         "=?UTF-8?Q?Angebot_f=C3=BCr_Q1_=E2=80=93_Preisliste?=", True),
        ("bob", "Bob Müller", "10.0.0.22", "BOB-LAPTOP", ["sales@vendor.example", "carol@example.com"],
         "Re: Lieferung nächste Woche", False),
        ("carol", "Carol Example", "10.0.0.23", "CAROL-PC", ["friend@mail.example.net"],
         "Lunch on Friday?", False),
    ]
    for index, (user, name, ip, helo, rcpts, subject, attachment) in enumerate(people):
        start = at(8, 10 + 7 * index)
        mid = f"<{index + 1:03d}a1b2c3$legit$@{helo.lower()}.example.com>"
        data_time = smtp_session("SMTPSVC1", start, ip, helo, auth=user, sender=f"{user}@example.com",
                                 recipients=rcpts, message_id=mid)
        from_name = name if name.isascii() else "=?ISO-8859-1?Q?Bob_M=FCller?="
        headers = [
            received_smtpsvc(helo, ip, data_time),
            f"From: \"{from_name}\" <{user}@example.com>",
            f"To: {', '.join(rcpts)}",
            f"Subject: {subject}",
            f"Date: {rfc2822(data_time - dt.timedelta(seconds=5))}",
            f"Message-ID: {mid}",
            "MIME-Version: 1.0",
            "X-Mailer: Microsoft Office Outlook 11",
        ]
        if attachment:
            headers.append('Content-Type: multipart/mixed; boundary="----=_NextPart_000_0001"')
            body = ["This is a multi-part message in MIME format.", "", "------=_NextPart_000_0001",
                    "Content-Type: text/plain; charset=\"utf-8\"", "Content-Transfer-Encoding: 8bit", "",
                    "Hallo, anbei die Preisliste für Q1.", "", "------=_NextPart_000_0001",
                    "Content-Type: application/pdf; name=\"preise.pdf\"", "Content-Transfer-Encoding: base64",
                    "Content-Disposition: attachment; filename=\"preise.pdf\"", "",
                    base64.b64encode(b"%PDF-1.4\n% price list\n" * 6).decode(), "", "------=_NextPart_000_0001--"]
        else:
            headers.append("Content-Type: text/plain; charset=\"utf-8\"")
            headers.append("Content-Transfer-Encoding: 8bit")
            body = [f"Hi, this is {name}.", "", "Regards"]
        headers.append(f"X-OriginalArrivalTime: {filetime(data_time)}")
        queue_file(f"{VSI1}/Queue", f"legit-{user}", message(headers, body), data_time + dt.timedelta(seconds=1),
                   truth("legit", "outbound", user, ip, f"{user}@example.com", rcpts, "queue",
                         "authenticated office user; envelope only in W3C log"))


SPAM_IPS = [("203.0.113.45", "scan01"), ("203.0.113.77", "WIN-7XQ2P0L"), ("203.0.113.102", "[203.0.113.102]")]
SPAM_DOMAINS = ["shop.example", "mail.test", "inbox.example.org", "users.example.net", "post.test",
                "webmail.example", "corp.example.org", "isp.test", "home.example.net", "yahoo.example"]


def brute_force() -> None:
    """Failed AUTH attempts on scanner and admin before the campaign (W3C 535 + Security 529)."""
    t = at(10, 2)
    for round_, (ip, helo) in enumerate(SPAM_IPS[:2]):
        for attempt, user in enumerate(["admin", "administrator", "scanner", "scanner", "admin", "scanner"]):
            when = t + dt.timedelta(minutes=round_ * 9, seconds=attempt * 7)
            add_w3c("SMTPSVC1", when, ip, helo, "EHLO", f"+{helo}", 250, 0, 14)
            add_w3c("SMTPSVC1", when + dt.timedelta(seconds=1), ip, helo, "AUTH", "+LOGIN", 535, 0, 12)
            add_w3c("SMTPSVC1", when + dt.timedelta(seconds=2), ip, helo, "QUIT", helo, 240, 100, 6, 2000)
            security.append({"when": when + dt.timedelta(seconds=1), "type": "Failure Audit", "source": "Security",
                             "category": "Logon/Logoff", "id": 529, "user": "NT AUTHORITY\\SYSTEM",
                             "text": (f"Logon Failure: Reason: Unknown user name or bad password "
                                      f"User Name: {user} Domain: {DOMAIN} Logon Type: 8 Logon Process: Advapi "
                                      f"Authentication Package: MICROSOFT_AUTHENTICATION_PACKAGE_V1_0 "
                                      f"Workstation Name: {COMPUTER} Source Network Address: {ip}")})
    # a relay attempt without AUTH first: denied 5.7.1
    when = at(10, 30)
    ip, helo = "203.0.113.45", "scan01"
    add_w3c("SMTPSVC1", when, ip, helo, "EHLO", f"+{helo}", 250, 0, 14)
    add_w3c("SMTPSVC1", when + dt.timedelta(seconds=1), ip, helo, "MAIL", "+FROM:+<offers@pharma-deals.example>", 250, 0, 40)
    add_w3c("SMTPSVC1", when + dt.timedelta(seconds=1), ip, helo, "RCPT", "+TO:+<j.doe@shop.example>", 550, 0, 30)
    add_w3c("SMTPSVC1", when + dt.timedelta(seconds=2), ip, helo, "QUIT", helo, 240, 300, 6, 2000)


def spam_campaign() -> list[tuple[str, str, str, str]]:
    """scanner's pharmacy campaign; returns (id, message-id, sender, recipient) for bounces."""
    sent = []
    subjects = ["Cheap meds -{n}% today", "Your pharmacy order #{n}", "V1agra and C1alis -{n}% off",
                "Best prices on meds, {n}% discount"]
    for n in range(10):
        ip, helo = SPAM_IPS[n % 3]
        sender = f"{['offers', 'sales', 'noreply', 'info'][n % 4]}@pharma-deals{n % 3}.example"
        rcpts = [f"user{n * 3 + k}@{SPAM_DOMAINS[(n + k) % len(SPAM_DOMAINS)]}" for k in range(3)]
        mid = f"<{hashlib.md5(f'spam{n}'.encode()).hexdigest()[:20]}@{helo.strip('[]')}>"
        start = at(11, 5 + 4 * n)
        data_time = smtp_session("SMTPSVC1", start, ip, helo, auth="scanner", sender=sender,
                                 recipients=rcpts, message_id=mid, ehlo=n % 2 == 0)
        subject = subjects[n % 4].format(n=40 + n * 5)
        headers = [
            received_smtpsvc(helo, ip, data_time),
            f"From: \"Pharmacy Online\" <{sender}>",
            "To: undisclosed-recipients:;",
            f"Subject: {subject}",
            f"Date: {rfc2822(data_time - dt.timedelta(hours=3))}",
            f"Message-ID: {mid}",
            "MIME-Version: 1.0",
            "Content-Type: text/html; charset=\"windows-1252\"",
            "Content-Transfer-Encoding: quoted-printable",
            f"X-OriginalArrivalTime: {filetime(data_time)}",
        ]
        body = ["<html><body><p>Best online pharmacy =96 no prescription needed!</p>",
                f"<a href=3D\"http://pharma-deals{n % 3}.example/?id=3D{n}\">Order now</a> and save {40 + n * 5}%",
                "</body></html>"]
        name = queue_file(f"{VSI1}/Queue", f"spam-{n}", message(headers, body), data_time + dt.timedelta(seconds=1),
                          truth("spam", "compromised-account", "scanner", ip, sender, rcpts, "queue",
                                "pharmacy campaign; account only via Event 1708 + W3C (same IP, same minute)"))
        sent.append((name, mid, sender, rcpts[0]))
    return sent


def open_relay() -> None:
    for n, (ip, helo) in enumerate([("192.0.2.10", "relay-client.example"), ("192.0.2.11", "mx1.bulk.example"),
                                    ("192.0.2.10", "relay-client.example")]):
        sender = f"promo{n}@bulk.example"
        rcpts = [f"target{n}@victim.test", f"other{n}@remote.example.org"]
        mid = f"<relay.{n}.{hashlib.md5(str(n).encode()).hexdigest()[:10]}@bulk.example>"
        data_time = smtp_session("SMTPSVC1", at(13, 10 + 6 * n), ip, helo, auth=None, sender=sender,
                                 recipients=rcpts, message_id=mid)
        headers = [
            received_smtpsvc(helo, ip, data_time),
            f"Received: from [10.9.8.{n}] by {helo} with SMTP; {rfc2822(data_time - dt.timedelta(seconds=40))}",
            f"From: Bulk Promotions <{sender}>",
            f"To: {rcpts[0]}",
            f"Subject: Limited offer #{n + 1}: work from home",
            f"Date: {rfc2822(data_time - dt.timedelta(seconds=41))}",
            f"Message-ID: {mid}",
            f"X-OriginalArrivalTime: {filetime(data_time)}",
        ]
        queue_file(f"{VSI1}/Queue", f"relay-{n}", message(headers, ["Earn $$$ from home. Reply now."]),
                   data_time + dt.timedelta(seconds=1),
                   truth("relay", "open-relay", None, ip, sender, rcpts, "queue",
                         "unauthenticated outside->outside relay via misconfigured relay list 192.0.2.0/24"))


def malformed() -> None:
    ip, helo = "192.0.2.11", "mx1.bulk.example"
    data_time = smtp_session("SMTPSVC1", at(13, 40), ip, helo, auth=None, sender="x@bulk.example",
                             recipients=["someone@victim.test"], message_id="")
    long_line = "X-Long: " + "A" * 1200
    data = (received_smtpsvc(helo, ip, data_time) + "\r\n").encode() + (
        "From: =?utf-8?B?broken===?= <x@bulk.example>\r\n"
        "To: someone@victim.test\r\n"
    ).encode() + b"Subject: Gr\xfc\xdfe =?iso-8859-1?Q?caf=E9_?= =?bogus-charset?Q?x?=\r\n" + \
        long_line.encode() + b"\r\n" + f"X-OriginalArrivalTime: {filetime(data_time)}\r\n".encode() + \
        b"\r\nno date, no message-id, 8-bit headers\r\n"
    queue_file(f"{VSI1}/Queue", "malformed-0", data, data_time + dt.timedelta(seconds=1),
               truth("malformed", "open-relay", None, ip, "x@bulk.example", ["someone@victim.test"], "queue",
                     "no Date, no Message-ID, raw 8-bit Subject, broken encoded word, 1200-byte line"))


def backscatter_queue(sent: list[tuple[str, str, str, str]]) -> None:
    """NDRs this server generated for its own spam, queued to the forged senders."""
    for n, (_, mid, sender, rcpt) in enumerate(sent[:2]):
        when = at(12, 30 + n)
        boundary = f"9B095B5ADSN=_01C{n:05d}00000001{COMPUTER}"
        ndr_id = f"<{hashlib.md5(f'ndr{n}'.encode()).hexdigest()[:16].upper()}@{SERVER}>"
        headers = [
            f"From: postmaster@example.com",
            f"To: {sender}",
            f"Date: {rfc2822(when)}",
            "MIME-Version: 1.0",
            f"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"",
            f"Message-ID: {ndr_id}",
            "Subject: Delivery Status Notification (Failure)",
            f"X-OriginalArrivalTime: {filetime(when)}",
        ]
        body = [
            "This is a MIME-formatted message.  ",
            "Portions of this message may be unreadable without a MIME-capable mail program.", "",
            f"--{boundary}", "Content-Type: text/plain; charset=unicode-1-1-utf-7", "",
            "This is an automatically generated Delivery Status Notification.", "",
            "Delivery to the following recipients failed.", "", f"       {rcpt}", "", "",
            f"--{boundary}", "Content-Type: message/delivery-status", "",
            f"Reporting-MTA: dns;{SERVER}", f"Received-From-MTA: dns;{SPAM_IPS[0][1]}",
            f"Arrival-Date: {rfc2822(when - dt.timedelta(minutes=20))}", "",
            f"Final-Recipient: rfc822;{rcpt}", "Action: failed", "Status: 5.0.0", "",
            f"--{boundary}", "Content-Type: message/rfc822", "",
            f"From: \"Pharmacy Online\" <{sender}>", f"Subject: spam", f"Message-ID: {mid}", "",
            "<html>...</html>", "", f"--{boundary}--",
        ]
        queue_file(f"{VSI1}/Queue", f"ndr-{n}", message(headers, body), when,
                   truth("backscatter", "bounce", None, None, "", [sender], "queue",
                         "NDR (5.0.0) generated for scanner's spam, addressed to the forged sender"))


def pickup_web_script() -> None:
    """An ASP form mailer (CDOSYS) dropped these into PickUp; SMTP was stopped before pickup."""
    cases = [
        ("x-sender: webform@example.com\r\nx-receiver: lucky1@mail.test\r\nx-receiver: lucky2@inbox.example.org\r\n",
         "webform@example.com", ["lucky1@mail.test", "lucky2@inbox.example.org"]),
        ("X-Sender: <webform@example.com>\r\nX-Receiver: <winner@post.test>\r\nx-RECEIVER: <prize@isp.test>\r\n"
         "X-Receiver: <claim@webmail.example>\r\n",
         "webform@example.com", ["winner@post.test", "prize@isp.test", "claim@webmail.example"]),
    ]
    for n, (envelope, sender, rcpts) in enumerate(cases):
        when = at(14, 5 + n * 2)
        headers = [
            "thread-index: AcxTZ" + f"{n:04d}" + "AAA==",
            "Thread-Topic: You have won",
            f"From: \"Prize Department\" <{sender}>",
            f"To: {rcpts[0]}",
            "Subject: =?windows-1252?Q?You_have_won_=80_1.000.000?=",
            f"Date: {rfc2822(when)}",
            f"Message-ID: <CDOSYS.{n}.{when.strftime('%H%M%S')}@{SERVER}>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=\"windows-1252\"",
            "X-Mailer: Produced By Microsoft MimeOLE V6.00.3790.4325",
        ]
        data = envelope.encode() + message(headers, ["Claim your prize at http://prize.example/claim"])
        name = f"{hashlib.sha1(f'pick{n}'.encode()).hexdigest()[:8].upper()}-{n:04d}"
        write(f"{VSI1}/PickUp/{name}.eml", data, when)
        manifest.append({"id": name, **truth("spam", "web-script", None, None, sender, rcpts, "pickup",
                                              "injected locally by contact.asp (CDOSYS) without a login")})


def badmail(sent: list[tuple[str, str, str, str]]) -> None:
    """NDRs that could not be delivered to the forged senders, one trio per case (KB 895853)."""
    cases = [
        ("5.7.1", "smtp;550 5.7.1 Unable to relay for {rcpt}", "utf-16",
         "relay denied by the forged sender's domain (KB 895853 scenario 1: authenticated relay)"),
        ("5.0.0", None, "ansi", "no route to the forged sender's domain (generic 5.0.0)"),
        ("5.7.3", "smtp;530 5.7.3 Client was not authenticated", "ansi",
         "destination requires authentication (KB 895853 scenario 5)"),
    ]
    for n, (status, diagnostic, encoding, note) in enumerate(cases):
        _, mid, sender, rcpt = sent[2 + n]
        when = at(15, 10 + n * 3)
        stem = ntfs_name(f"bad-{n}")
        boundary = f"9B095B5ADSN=_01C{n + 7:05d}00000002{COMPUTER}"
        dsn_lines = [f"Final-Recipient: rfc822;{sender}", "Action: failed", f"Status: {status}"]
        if diagnostic:
            dsn_lines.append(f"Diagnostic-Code: {diagnostic.format(rcpt=sender)}")
        bad = message([
            "From: postmaster@example.com",
            f"To: {sender}",
            f"Date: {rfc2822(when)}",
            "MIME-Version: 1.0",
            f"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"",
            f"Message-ID: <{stem}@{SERVER}>",
            "Subject: Delivery Status Notification (Failure)",
        ], [
            "This is a MIME-formatted message.  ", "",
            f"--{boundary}", "Content-Type: text/plain; charset=unicode-1-1-utf-7", "",
            "Delivery to the following recipients failed.", "", f"       {sender}", "",
            f"--{boundary}", "Content-Type: message/delivery-status", "",
            f"Reporting-MTA: dns;{SERVER}", f"Arrival-Date: {rfc2822(when - dt.timedelta(minutes=30))}", "",
            *dsn_lines, "",
            f"--{boundary}", "Content-Type: message/rfc822", "",
            f"Received: from {SPAM_IPS[n % 3][1]} ([{SPAM_IPS[n % 3][0]}]) by {SERVER} with Microsoft SMTPSVC({BUILD});",
            f"\t {rfc2822(when - dt.timedelta(minutes=31))}",
            f"From: \"Pharmacy Online\" <{sender}>", f"To: {rcpt}", "Subject: Cheap meds", f"Message-ID: {mid}", "",
            "<html>...</html>", "", f"--{boundary}--",
        ])
        reason = ("Unable to deliver this message because the following error was encountered: "
                  "\"This message is a delivery status notification that cannot be delivered.\".\r\n\r\n"
                  "The specific error code was 0xC00402C7.\r\n\r\n"
                  f"The message sender was <>.\r\n\r\nThe message was intended for the following recipients.\r\n"
                  f"\t{sender}\r\n")
        bdr = (b"\xff\xfe" + reason.encode("utf-16-le")) if encoding == "utf-16" else reason.encode("cp1252")
        # .BDP: undocumented binary; modelled as a small property blob with the envelope strings
        bdp = (b"\x01\x00\x00\x00" + struct.pack("<I", 0x1002) + struct.pack("<I", 2 * (len(sender) + 3)) +
               f"<{sender}>\x00".encode("utf-16-le") + b"\x00\x00" + struct.pack("<I", 0x1006) +
               hashlib.sha256(stem.encode()).digest() + f"\x00{rcpt}\x00".encode("ascii") +
               f"postmaster@example.com".encode("utf-16-le") + b"\x00\x00\xff\xfe\x00\x01")
        write(f"{VSI1}/BadMail/{stem}.BAD", bad, when)
        write(f"{VSI1}/BadMail/{stem}.BDR", bdr, when)
        write(f"{VSI1}/BadMail/{stem}.BDP", bdp, when)
        manifest.append({"id": stem, **truth("backscatter", "bounce", None, None, "", [sender], "badmail",
                                              f"undeliverable NDR, original spam inside; {note}; .BDR {encoding}")})


def events_story() -> None:
    """Application log events around the incident (KB 895853): 7004, 4000, 4001, 1701, 1707, 1709, 1710, 7002."""
    def ev(when, etype, eid, text, category="SMTP Protocol", source="MSExchangeTransport"):
        events.append({"when": when, "type": etype, "source": source, "category": category, "id": eid,
                       "user": "N/A", "text": text})
    ev(at(6, 0), "Information", 1707, "Initiating a new connection for virtual server 1 (vsi 1).", "Connection Manager")
    ev(at(11, 50), "Warning", 7004,
       'This is an SMTP protocol error log for virtual server ID 1, connection #231. The remote host '
       '"mx.shop.example", responded to the SMTP command "rcpt" with "550 5.7.1 Unable to relay for '
       'offers@pharma-deals0.example ". The full command sent was "RCPT TO:<offers@pharma-deals0.example> ". '
       'This will probably cause the connection to fail.')
    ev(at(11, 52), "Warning", 7002,
       'This is an SMTP protocol log for virtual server ID 1, connection #232. The client at "203.0.113.77" '
       'sent a "RCPT" command, and the SMTP server responded with "550 5.7.1 Requested action not taken: '
       'message refused". The full command sent was "RCPT TO:<j.doe@shop.example>".')
    ev(at(12, 10), "Error", 4000,
       "Message delivery to the remote domain 'isp.test' failed for the following reason: "
       "The connection was dropped by the remote host.", "Connection Manager")
    ev(at(12, 40), "Error", 4001,
       "Message delivery to the host '198.18.0.25' failed while delivering to the remote domain "
       "'mail.test' for the following reason: The remote server did not respond to a connection attempt.",
       "Connection Manager")
    ev(at(15, 20), "Warning", 1709,
       "A non-delivery report with a status code of 5.7.1 was generated for recipient rfc822;"
       "offers@pharma-deals0.example (Message-ID " + "<badmail-ndr>).", "NDR")
    ev(at(15, 21), "Warning", 1710,
       "A non-delivery report with a status code of 5.7.3 was generated for recipient rfc822;"
       "noreply@pharma-deals1.example.", "NDR")
    ev(at(15, 22), "Error", 1701,
       "Unable to bind to the destination server in DNS for virtual server vsi 1: the MX record for "
       "example.com points at an address that is not this SMTP virtual server.", "NDR")


# ------------------------------------------------------------------ outputs

def inbound_vsi2_and_iis() -> None:
    """VS 2 takes partners' mail; the IIS-only mailroot drops mail for a local domain."""
    for n, (ip, helo, rcpt) in enumerate([("198.51.100.10", "mx.partner.example", "alice@example.com"),
                                          ("198.51.100.11", "smtp.vendor.example", "bob@example.com")]):
        sender = f"orders@{helo.split('.', 1)[1]}"
        mid = f"<inbound.{n}.{hashlib.md5(helo.encode()).hexdigest()[:12]}@{helo}>"
        data_time = smtp_session("SMTPSVC2", at(9, 15 + n * 20), ip, helo, auth=None, sender=sender,
                                 recipients=[rcpt], message_id=mid)
        headers = [received_smtpsvc(helo, ip, data_time), f"From: Orders <{sender}>", f"To: {rcpt}",
                   f"Subject: Order confirmation {4711 + n}", f"Date: {rfc2822(data_time)}", f"Message-ID: {mid}",
                   f"X-OriginalArrivalTime: {filetime(data_time)}"]
        queue_file(f"{VSI2}/Queue", f"inbound-{n}", message(headers, ["Your order has shipped."]),
                   data_time + dt.timedelta(seconds=1),
                   truth("legit", "inbound", None, ip, sender, [rcpt], "queue", "partner mail on virtual server 2"))
    # Inetpub/mailroot (IIS-only SMTP on the same box, for intranet.example.com)
    when = at(9, 50)
    drop_legit = ("x-sender: news@partner.example\r\nx-receiver: carol@intranet.example.com\r\n").encode() + message(
        [received_smtpsvc("mx.partner.example", "198.51.100.10", when, by="intranet.example.com"),
         "From: Partner News <news@partner.example>", "To: carol@intranet.example.com",
         "Subject: Newsletter November", f"Date: {rfc2822(when)}", "Message-ID: <nl-2026-11@partner.example>"],
        ["Monthly partner newsletter."])
    write(f"{IIS}/Drop/{ntfs_name('drop-0')}.eml", drop_legit, when)
    manifest.append({"id": ntfs_name("drop-0"), **truth("legit", "inbound", None, "198.51.100.10", "news@partner.example",
                                                        ["carol@intranet.example.com"], "drop", "IIS Drop folder")})
    when = at(16, 5)
    drop_bs = ("X-Sender: <>\r\nX-Receiver: alice@intranet.example.com\r\n").encode() + message(
        [received_smtpsvc("mx.remote.example.org", "198.51.100.77", when, by="intranet.example.com"),
         "From: Mail Delivery Subsystem <MAILER-DAEMON@remote.example.org>", "To: alice@intranet.example.com",
         "Subject: Undelivered Mail Returned to Sender", f"Date: {rfc2822(when)}",
         "Message-ID: <bounce.77@remote.example.org>", "MIME-Version: 1.0",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"BS77\""],
        ["--BS77", "Content-Type: text/plain", "", "I'm sorry to have to inform you...", "",
         "--BS77", "Content-Type: message/delivery-status", "", "Reporting-MTA: dns; mx.remote.example.org", "",
         "Final-Recipient: rfc822; nobody@remote.example.org", "Original-Recipient: rfc822;nobody@remote.example.org",
         "Action: failed", "Status: 5.1.1", "Remote-MTA: dns; store.remote.example.org",
         "Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.example.org>: Recipient address rejected",
         "Last-Attempt-Date: Thu, 26 Nov 2026 16:04:58 +0000", "",
         "--BS77", "Content-Type: text/rfc822-headers", "",
         "From: alice@intranet.example.com", "To: nobody@remote.example.org", "Subject: Re: your invoice",
         "Message-ID: <forged.1@spamhost.example>", "", "--BS77--"])
    write(f"{IIS}/Drop/{ntfs_name('drop-1')}.eml", drop_bs, when)
    manifest.append({"id": ntfs_name("drop-1"), **truth("backscatter", "bounce", None, "198.51.100.77", "",
                                                        ["alice@intranet.example.com"], "drop",
                                                        "null-sender DSN for mail never sent from here")})
    when = at(16, 30)
    iis_q = message([received_smtpsvc("WEB01", "10.0.0.40", when, by="intranet.example.com"),
                     "From: reports@intranet.example.com", "To: it@partner.example", "Subject: Nightly report",
                     f"Date: {rfc2822(when)}", "Message-ID: <report.20261126@web01>",
                     f"X-OriginalArrivalTime: {filetime(when)}"], ["ok"])
    queue_file(f"{IIS}/Queue", "iis-queue-0", iis_q, when,
               truth("legit", "outbound", None, "10.0.0.40", "reports@intranet.example.com", ["it@partner.example"],
                     "queue", "IIS-only SMTP queue"))


def write_w3c() -> None:
    fields = ("#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
              "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
              "cs(User-Agent) cs(Cookie) cs(Referer)")
    for instance, rows in w3c.items():
        rows.sort(key=lambda r: r[0])
        restart = at(12, 0)
        out = ["#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0",
               f"#Date: {DAY.strftime('%Y-%m-%d')} 00:00:00", fields]
        restarted = False
        for when, line in rows:
            if instance == "SMTPSVC1" and not restarted and when >= restart:
                out += ["#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0",
                        f"#Date: {restart.strftime('%Y-%m-%d %H:%M:%S')}", fields]
                restarted = True
            out.append(line)
        rel = f"WINDOWS/system32/LogFiles/{instance}/ex{DAY.strftime('%y%m%d')}.log"
        write(rel, ("\r\n".join(out) + "\r\n").encode("ascii"), at(23, 59))


def event_time(when: dt.datetime) -> tuple[str, str]:
    hour = when.hour % 12 or 12
    return f"{when.month}/{when.day}/{when.year}", f"{hour}:{when.strftime('%M:%S')} {'PM' if when.hour >= 12 else 'AM'}"


def csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"') else text


def write_events() -> None:
    """Event Viewer 2003 exports: header-less CSV (Date,Time,Type,Source,Category,Event,User,Computer,
    Description) and the text block format of "Copy event to clipboard"."""
    for logname, rows in (("Application", events), ("Security", security)):
        rows = sorted(rows, key=lambda e: (e["when"], e["id"]), reverse=True)  # newest first, as exported
        lines = []
        for e in rows:
            date, clock = event_time(e["when"])
            lines.append(",".join(csv_cell(v) for v in (date, clock, e["type"], e["source"], e["category"],
                                                         str(e["id"]), e["user"], COMPUTER, e["text"])))
        write(f"EventLogs/{logname}.csv", ("\r\n".join(lines) + "\r\n").encode("cp1252"), at(23, 58))
        if logname != "Application":
            continue
        blocks = []
        for e in rows:
            date, clock = event_time(e["when"])
            blocks.append("\r\n".join([
                f"Event Type:\t{e['type']}", f"Event Source:\t{e['source']}", f"Event Category:\t{e['category']} ",
                f"Event ID:\t{e['id']}", f"Date:\t\t{date}", f"Time:\t\t{clock}", f"User:\t\t{e['user']}",
                f"Computer:\t{COMPUTER}", "Description:", e["text"], "",
                "For more information, see Help and Support Center at http://go.microsoft.com/fwlink/events.asp.",
            ]))
        write(f"EventLogs/{logname}.txt", ("\r\n\r\n".join(blocks) + "\r\n").encode("cp1252"), at(23, 58))


def main() -> None:
    if SPOOL.exists():
        shutil.rmtree(SPOOL)
    legit_outbound()
    brute_force()
    sent = spam_campaign()
    open_relay()
    malformed()
    backscatter_queue(sent)
    pickup_web_script()
    badmail(sent)
    inbound_vsi2_and_iis()
    events_story()
    write_w3c()
    write_events()
    (HERE / "files.json").write_text(json.dumps(dict(sorted(files_meta.items())), indent=1) + "\n")
    (HERE / "manifest.jsonl").write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in manifest))


if __name__ == "__main__":
    main()

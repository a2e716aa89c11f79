#!/usr/bin/env python3
"""Build corpora/exchange2016: an Exchange 2016 server's TransportRoles and an export folder.

No Exchange can run here; files follow the documented formats and public samples
(research/exchange-formats.md section 4); README.md says what is assumed.
Deterministic: re-running gives identical bytes.

    spool/Program Files/Microsoft/Exchange Server/V15/TransportRoles/Pickup/   plain .eml (+ one .bad)
    spool/Program Files/Microsoft/Exchange Server/V15/TransportRoles/Replay/   X-header block .eml
    spool/Program Files/Microsoft/Exchange Server/V15/TransportRoles/Logs/FrontEnd/ProtocolLog/SmtpReceive/RECV2026112610-1.LOG
    spool/Program Files/Microsoft/Exchange Server/V15/TransportRoles/Logs/MessageTracking/MSGTRK2026112610-1.LOG
    spool/exportfolder/*.eml    Get-Message | Export-Message | AssembleMessage from the queues

Run: python3 corpora/exchange2016/generate.py   (rewrites spool/, files.json, manifest.jsonl)
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import shutil
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPOOL = HERE / "spool"
TR = "Program Files/Microsoft/Exchange Server/V15/TransportRoles"
EXPORT = "exportfolder"
SERVER = "mail.example.com"
HOST = "MAIL16"
SERVER_IP = "10.0.0.6"
BUILD = "15.1.2507.17"
VERSION = "15.01.2507.017"
FRONTEND = f"{HOST}\\Default Frontend {HOST}"
DAY = dt.datetime(2026, 11, 26, tzinfo=dt.timezone.utc)

files_meta: dict[str, dict] = {}
manifest: list[dict] = []
protocol_rows: list[tuple[dt.datetime, int, str]] = []
tracking_rows: list[tuple[dt.datetime, int, str]] = []
_row_counter = [0]


def at(hour: int, minute: int, second: int = 0, ms: int = 0) -> dt.datetime:
    return DAY + dt.timedelta(hours=hour, minutes=minute, seconds=second, milliseconds=ms)


def rfc2822(when: dt.datetime) -> str:
    return f"{when.strftime('%a')}, {when.day} {when.strftime('%b %Y %H:%M:%S')} +0000"


def iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def det_uuid(seed: str) -> str:
    return str(uuid.UUID(hashlib.md5(seed.encode()).hexdigest()))


def write(rel: str, data: bytes, when: dt.datetime) -> None:
    path = SPOOL / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    files_meta[rel] = {"mtime": float(calendar.timegm(when.utctimetuple())), "mode": 0o644}


def crlf(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value


def truth(kind, scenario, account, client_ip, sender, recipients, queue, notes="") -> dict:
    return {"kind": kind, "scenario": scenario, "account": account, "client_ip": client_ip,
            "sender": sender, "recipients": recipients, "queue": queue, "notes": notes}


def injected_block(sender: str, recipients: list[str], helo: str, source: str, source_ip: str,
                   auth: str | None, seed: str) -> bytes:
    """Replay/Export X-header block; X-EndOfInjectedXHeaders = byte size of the lines before it."""
    params = " BODY=7bit RET=HDRS ENVID=" + hashlib.md5(seed.encode()).hexdigest()[:12].upper()
    params += f" auth=<{auth}>" if auth else " auth=<>"
    lines = [f"X-Sender: <{sender}>{params}"]
    lines += [f"X-Receiver: <{r}> NOTIFY=NEVER ORCPT=rfc822;{r}" for r in recipients]
    lines += ["X-CreatedBy: MSExchange15", f"X-HeloDomain: {helo}",
              "X-ExtendedProps: BQBjAAoAgkemlidQ3AgFAGEACgABAAAAMgAAAAkAUAAAAA==",
              f"X-Source: {source}", f"X-SourceIPAddress: {source_ip}"]
    block = ("\r\n".join(lines) + "\r\n").encode()
    return block + f"X-EndOfInjectedXHeaders: {len(block)}\r\n".encode()


def org_headers(when: dt.datetime, auth_as: str, mechanism: str, client_ip: str, nmid: str,
                source: str = f"{HOST}.example.com", direction: str = "Originating") -> list[str]:
    return [
        f"X-MS-Exchange-Organization-OriginalArrivalTime: {when.strftime('%d %b %Y %H:%M:%S')}.{when.microsecond // 100:04d} (UTC)",
        f"X-MS-Exchange-Organization-Network-Message-Id: {nmid}",
        f"X-MS-Exchange-Organization-AuthSource: {source}",
        f"X-MS-Exchange-Organization-AuthAs: {auth_as}",
        f"X-MS-Exchange-Organization-AuthMechanism: {mechanism}",
        f"X-MS-Exchange-Organization-OriginalClientIPAddress: {client_ip}",
        f"X-MS-Exchange-Organization-OriginalServerIPAddress: {SERVER_IP}",
        f"X-MS-Exchange-Organization-MessageDirectionality: {direction}",
    ]


def received_e16(helo: str, ip: str, when: dt.datetime) -> str:
    return (f"Received: from {helo} ({ip}) by {HOST}.example.com ({SERVER_IP}) with Microsoft SMTP Server\r\n"
            f" (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id {BUILD}; {rfc2822(when)}")


# ---------------------------------------------------------------- protocol + tracking logs

def proto(when: dt.datetime, session: str, seq: int, remote: str, event: str, data: str = "", context: str = "") -> None:
    _row_counter[0] += 1
    row = ",".join([iso(when), csv_cell(FRONTEND), session, str(seq), f"{SERVER_IP}:25", remote, event,
                    csv_cell(data), csv_cell(context)])
    protocol_rows.append((when, _row_counter[0], row))


def smtp_session(start: dt.datetime, ip: str, helo: str, *, login: str | None, sender: str,
                 recipients: list[str], message_id: str | None, failed_logins: list[str] = ()) -> tuple[str, str]:
    """Protocol log rows for one SMTP Receive session; returns (session id, receiving-message context)."""
    session = hashlib.md5(f"{ip}{start}".encode()).hexdigest()[:16].upper()
    remote = f"{ip}:{50000 + start.minute * 60 + start.second}"
    t = start
    seq = 0

    def row(event: str, data: str = "", context: str = "", step: int = 0) -> None:
        nonlocal seq, t
        t = t + dt.timedelta(milliseconds=step)
        proto(t, session, seq, remote, event, data, context)
        seq += 1

    row("+", "", "")
    row("*", "SMTPSubmit SMTPAcceptAnyRecipient SMTPAcceptAuthenticationFlag SMTPAcceptAnySender "
        "SMTPAcceptAuthoritativeDomainSender BypassAntiSpam AcceptRoutingHeaders", "Set Session Permissions")
    row(">", f"220 {SERVER} Microsoft ESMTP MAIL Service ready at {rfc2822(t)}", "", 2)
    row("<", f"EHLO {helo}", "", 40)
    row(">", f"250-{SERVER} Hello [{ip}] SIZE 37748736 PIPELINING DSN ENHANCEDSTATUSCODES STARTTLS AUTH NTLM LOGIN", "", 1)
    for user in failed_logins:
        row("<", "AUTH LOGIN", "", 300)
        row("*", "", "Inbound AUTH LOGIN failed because of LogonDenied", 900)
        row("*", "", f"User Name: {user}", 1)
        row(">", "535 5.7.3 Authentication unsuccessful", "", 1)
    context = ""
    if login:
        row("<", "AUTH LOGIN", "", 300)
        row("*", "SMTPSubmit SMTPAcceptAnyRecipient SMTPAcceptAuthenticationFlag SMTPAcceptAnySender "
            "SMTPAcceptAuthoritativeDomainSender BypassAntiSpam BypassMessageSizeLimit", "Set Session Permissions", 400)
        row("*", f"EXAMPLE\\{login}", "authenticated", 1)
        row(">", "235 2.7.0 Authentication successful", "", 1)
    if message_id is not None:
        row("<", f"MAIL FROM:<{sender}> SIZE=2048", "", 200)
        context = f"{session};{iso(start)};1"
        row("*", context, "receiving message", 1)
        row(">", "250 2.1.0 Sender OK", "", 1)
        for rcpt in recipients:
            row("<", f"RCPT TO:<{rcpt}>", "", 20)
            row(">", "250 2.1.5 Recipient OK", "", 1)
        row("<", "DATA", "", 20)
        row(">", "354 Start mail input; end with <CRLF>.<CRLF>", "", 1)
        row(">", f"250 2.6.0 {message_id} [InternalId={int(session[:6], 16)}, Hostname={HOST}.example.com] "
            "Queued mail for delivery", "", 800)
    row("<", "QUIT", "", 100)
    row(">", "221 2.0.0 Service closing transmission channel", "", 1)
    row("-", "", "Local", 1)
    return session, context


TRACK_FIELDS = ("date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
                "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,"
                "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
                "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
                "original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,"
                "schema-version")


def track(when: dt.datetime, *, client_ip: str, client_host: str, source_context: str, connector: str,
          source: str, event: str, internal: int, message_id: str, nmid: str, recipients: list[str],
          status: str, size: int, subject: str, sender: str, return_path: str, direction: str) -> None:
    _row_counter[0] += 1
    values = [iso(when), client_ip, client_host, SERVER_IP, f"{HOST}.example.com", source_context, connector,
              source, event, str(internal), message_id, nmid, ";".join(recipients), status, str(size),
              str(len(recipients)), "", "", subject, sender, return_path,
              f"{iso(when - dt.timedelta(milliseconds=15))};SRV={HOST}.example.com:TOTAL=0", direction, "",
              client_ip, SERVER_IP, "S:DeliveryPriority=Normal", "Email",
              det_uuid(f"log{internal}{event}"), VERSION]
    tracking_rows.append((when, _row_counter[0], ",".join(csv_cell(v) for v in values)))


# ---------------------------------------------------------------- the story

def exported(name_seed: str, *, when: dt.datetime, ip: str, helo: str, login: str | None, sender: str,
             header_from: str, recipients: list[str], subject: str, body: list[str], kind: str, scenario: str,
             notes: str, auth_as: str, mechanism: str, extra_headers: list[str] = (),
             forged_org: list[str] | None = None, queue: str = "export", failed: list[str] = ()) -> dict:
    """One message through SMTP Receive, then exported from its queue (or placed in Replay)."""
    mid = f"<{hashlib.md5(name_seed.encode()).hexdigest()[:24]}@{helo.strip('[]')}>"
    session, context = smtp_session(when, ip, helo, login=login, sender=sender, recipients=recipients,
                                    message_id=mid, failed_logins=failed)
    nmid = det_uuid(name_seed)
    received_at = when + dt.timedelta(seconds=2)
    internal = 1000 + len(manifest)
    headers = [received_e16(helo, ip, received_at)]
    headers += [f"From: {header_from}", f"To: {', '.join(recipients)}", f"Subject: {subject}",
                f"Date: {rfc2822(when - dt.timedelta(seconds=3))}", f"Message-ID: {mid}",
                "MIME-Version: 1.0", "Content-Type: text/plain; charset=\"utf-8\"",
                "Content-Transfer-Encoding: 8bit", "Return-Path: " + f"<{sender}>"]
    headers += list(extra_headers)
    headers += forged_org if forged_org is not None else org_headers(received_at, auth_as, mechanism, ip, nmid,
                                                                      direction="Originating" if login else "Incoming")
    data = injected_block(sender, recipients, helo, f"SMTP:Default Frontend {HOST}", ip,
                          f"{login}@example.com" if login and forged_org is None else None, name_seed) + \
        crlf(headers + [""] + body)
    name = f"{hashlib.sha1(name_seed.encode()).hexdigest()[:8]}-{len(manifest):04d}"
    folder = EXPORT if queue == "export" else f"{TR}/Replay"
    write(f"{folder}/{name}.eml", data, received_at + dt.timedelta(minutes=90))
    track(received_at, client_ip=ip, client_host=helo, source_context=context, connector=FRONTEND, source="SMTP",
          event="RECEIVE", internal=internal, message_id=mid, nmid=nmid, recipients=recipients, status="",
          size=len(data), subject=subject, sender=sender, return_path=sender,
          direction="Originating" if login else "Incoming")
    entry = {"id": name, **truth(kind, scenario, login, ip, sender, recipients, queue, notes)}
    manifest.append(entry)
    return {"mid": mid, "nmid": nmid, "sender": sender, "recipients": recipients, "subject": subject,
            "internal": internal, "when": received_at}


SPAM_IPS = [("203.0.113.45", "scan01"), ("203.0.113.77", "WIN-7XQ2P0L"), ("203.0.113.102", "[203.0.113.102]")]
SPAM_DOMAINS = ["shop.example", "mail.test", "inbox.example.org", "users.example.net", "post.test",
                "webmail.example", "corp.example.org", "isp.test", "home.example.net", "yahoo.example"]


def story() -> None:
    legit = [("alice", "Alice Example", "10.0.0.21", "ALICE-PC", ["partner1@partner.example"],
              "Angebot für Q1 – Preisliste"),
             ("bob", "Bob Müller", "10.0.0.22", "BOB-LAPTOP", ["sales@vendor.example"], "Lieferung nächste Woche")]
    for n, (user, name, ip, helo, rcpts, subject) in enumerate(legit):
        exported(f"legit-{user}", when=at(8, 10 + n * 9), ip=ip, helo=helo, login=user, sender=f"{user}@example.com",
                 header_from=f"\"{name}\" <{user}@example.com>", recipients=rcpts, subject=subject,
                 body=[f"Hallo, hier ist {name}."], kind="legit", scenario="outbound",
                 notes="authenticated office user; exported from the delivery queue",
                 auth_as="Internal", mechanism="04", queue="export" if n == 0 else "replay")
    # brute force first (LogonDenied), no message
    for n, (ip, helo) in enumerate(SPAM_IPS[:2]):
        smtp_session(at(10, 2 + n * 9), ip, helo, login=None, sender="", recipients=[], message_id=None,
                     failed_logins=["admin", "administrator@example.com", "scanner", "scanner@example.com"])
    spam = []
    for n in range(8):
        ip, helo = SPAM_IPS[n % 3]
        sender = f"{['offers', 'sales', 'noreply', 'info'][n % 4]}@pharma-deals{n % 3}.example"
        rcpts = [f"user{n * 3 + k}@{SPAM_DOMAINS[(n + k) % len(SPAM_DOMAINS)]}" for k in range(3)]
        subject = ["Cheap meds -{n}% today", "Your pharmacy order #{n}", "V1agra and C1alis -{n}% off",
                   "Best prices on meds, {n}% discount"][n % 4].format(n=40 + n * 5)
        spam.append(exported(f"spam-{n}", when=at(11, 5 + 4 * n), ip=ip, helo=helo, login="scanner", sender=sender,
                             header_from=f"\"Pharmacy Online\" <{sender}>", recipients=rcpts, subject=subject,
                             body=["Best online pharmacy, no prescription needed!",
                                   f"http://pharma-deals{n % 3}.example/?id={n}"],
                             kind="spam", scenario="compromised-account",
                             notes="pharmacy campaign; trusted AuthAs Internal; login in protocol log and X-Sender AUTH=",
                             auth_as="Internal", mechanism="06"))
    for n, (ip, helo) in enumerate([("192.0.2.10", "relay-client.example"), ("192.0.2.11", "mx1.bulk.example")]):
        sender = f"promo{n}@bulk.example"
        rcpts = [f"target{n}@victim.test"]
        exported(f"relay-{n}", when=at(13, 10 + n * 6), ip=ip, helo=helo, login=None, sender=sender,
                 header_from=f"Bulk Promotions <{sender}>", recipients=rcpts, subject=f"Limited offer #{n + 1}",
                 body=["Earn $$$ from home."], kind="relay", scenario="open-relay",
                 notes="anonymous relay allowed by a receive connector whose RemoteIPRanges include 192.0.2.0/24",
                 auth_as="Anonymous", mechanism="00", queue="export" if n == 0 else "replay")
    # a phishing message whose kit forged the org auth headers (untrusted: AuthSource is not our hop)
    exported("forged-org", when=at(13, 45), ip="203.0.113.9", helo="mailer.attacker.example", login=None,
             sender="ceo@example.com.attacker.example", header_from="\"CEO\" <ceo@example.com>",
             recipients=["carol@example.com"], subject="Urgent wire transfer", body=["Please pay the attached invoice."],
             kind="spam", scenario="inbound", notes="forged X-MS-Exchange-Organization-AuthAs: Internal; untrusted",
             auth_as="Internal", mechanism="07",
             forged_org=["X-MS-Exchange-Organization-AuthAs: Internal",
                         "X-MS-Exchange-Organization-AuthSource: EXCH01.corp.local",
                         "X-MS-Exchange-Organization-AuthMechanism: 07",
                         "X-MS-Exchange-Organization-OriginalClientIPAddress: 10.1.1.1"])
    ndrs(spam)
    pickup()


NDR_CASES = [
    ("5.7.1", "smtp;550 5.7.1 Unable to relay", "remote domain refused to relay (KB 895853: relay restrictions)"),
    ("5.0.0", "smtp;550 5.0.0 Remote server rejected the message", "generic failure / no route"),
    ("5.7.3", "smtp;530 5.7.3 Client was not authenticated", "destination requires authentication (KB 895853 scenario 5)"),
]


def ndrs(spam: list[dict]) -> None:
    """NDRs Exchange generated for scanner's spam, to the forged senders: backscatter, exported."""
    for n, (status, diagnostic, note) in enumerate(NDR_CASES):
        original = spam[n]
        when = original["when"] + dt.timedelta(minutes=25)
        rcpt = original["recipients"][0]
        boundary = f"_000_{hashlib.md5(f'ndr{n}'.encode()).hexdigest()[:20]}_"
        mid = f"<{det_uuid(f'ndr{n}')}@{HOST}.example.com>"
        nmid = det_uuid(f"ndr-nmid{n}")
        headers = [
            f"Received: from {HOST}.example.com ({SERVER_IP}) by {HOST}.example.com ({SERVER_IP}) with Microsoft SMTP Server",
            f" id {BUILD}; {rfc2822(when)}",
            "From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com>",
            f"To: <{original['sender']}>",
            f"Date: {rfc2822(when)}",
            "Content-Type: multipart/report; report-type=delivery-status;",
            f"\tboundary=\"{boundary}\"",
            f"Message-ID: {mid}",
            f"In-Reply-To: {original['mid']}",
            f"Subject: Undeliverable: {original['subject']}",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            *org_headers(when, "Internal", "04", SERVER_IP, nmid),
        ]
        body = [
            f"--{boundary}", "Content-Type: text/plain; charset=\"us-ascii\"", "",
            f"Delivery has failed to these recipients or groups:", "", rcpt,
            "The server has tried to deliver this message, without success, and has stopped trying.", "",
            f"Remote Server returned '{status} {diagnostic.split(' ', 2)[-1]}'", "",
            f"--{boundary}", "Content-Type: message/delivery-status", "",
            f"Reporting-MTA: dns;{HOST}.example.com", f"Received-From-MTA: dns;{SPAM_IPS[n % 3][1]}",
            f"Arrival-Date: {rfc2822(original['when'])}", "",
            f"Original-Recipient: rfc822;{rcpt}", f"Final-Recipient: rfc822;{rcpt}", "Action: failed",
            f"Status: {status}", f"Remote-MTA: dns;mx.{rcpt.split('@')[1]}", f"Diagnostic-Code: {diagnostic}",
            f"X-Display-Name: {rcpt}", "",
            f"--{boundary}", "Content-Type: text/rfc822-headers", "",
            f"From: \"Pharmacy Online\" <{original['sender']}>", f"To: {', '.join(original['recipients'])}",
            f"Subject: {original['subject']}", f"Message-ID: {original['mid']}", "",
            f"--{boundary}--",
        ]
        data = injected_block("", [original["sender"]], f"{HOST}.example.com", "DSN", "0.0.0.0", None, f"ndr{n}") + \
            crlf(headers + [""] + body)
        name = f"ndr-{hashlib.sha1(f'ndr{n}'.encode()).hexdigest()[:8]}-{n:02d}"
        write(f"{EXPORT}/{name}.eml", data, when + dt.timedelta(minutes=60))
        track(when, client_ip="", client_host="", source_context="", connector="", source="DSN", event="DSN",
              internal=2000 + n, message_id=mid, nmid=nmid, recipients=[original["sender"]], status="",
              size=len(data), subject=f"Undeliverable: {original['subject']}", sender="", return_path="<>",
              direction="Originating")
        track(when - dt.timedelta(seconds=1), client_ip="", client_host="", source_context="", connector="",
              source="SMTP", event="FAIL", internal=original["internal"], message_id=original["mid"],
              nmid=original["nmid"], recipients=[rcpt], status=f"{diagnostic.split(';', 1)[1]}", size=2048,
              subject=original["subject"], sender=original["sender"], return_path=original["sender"],
              direction="Originating")
        manifest.append({"id": name, **truth("backscatter", "bounce", None, None, "", [original["sender"]], "export",
                                              f"NDR {status}: {note}")})


def pickup() -> None:
    """A web application on the box writes .eml into Pickup (no login); one file was rejected (.bad)."""
    for n in range(2):
        when = at(14, 5 + n * 3)
        rcpts = [f"lucky{n}@mail.test", f"winner{n}@post.test"]
        mid = f"<webform.{n}.{when.strftime('%H%M%S')}@{SERVER}>"
        data = crlf([f"From: \"Prize Department\" <webform@example.com>", f"To: {', '.join(rcpts)}",
                     f"Subject: You have won € 1.000.{n}00", f"Date: {rfc2822(when)}", f"Message-ID: {mid}",
                     "MIME-Version: 1.0", "Content-Type: text/plain; charset=\"utf-8\"",
                     "Content-Transfer-Encoding: 8bit", "", "Claim your prize at http://prize.example/claim"])
        name = f"webform-{n:04d}"
        write(f"{TR}/Pickup/{name}.eml", data, when)
        manifest.append({"id": name, **truth("spam", "web-script", None, None, "webform@example.com", rcpts, "pickup",
                                              "written into Pickup by contact.aspx; envelope from headers")})
        track(when + dt.timedelta(seconds=5), client_ip="", client_host="", source_context="", connector="",
              source="PICKUP", event="RECEIVE", internal=3000 + n, message_id=mid, nmid=det_uuid(f"pick{n}"),
              recipients=rcpts, status="", size=len(data), subject=f"You have won € 1.000.{n}00",
              sender="webform@example.com", return_path="webform@example.com", direction="Originating")
    when = at(14, 20)
    bad = crlf(["To: someone@victim.test", "Subject: =?utf-8?B?broken", "X-Long: " + "B" * 1500, "",
                "no From, no Sender, no Date: the Pickup service renamed it .bad"])
    write(f"{TR}/Pickup/broken-0001.bad", bad, when)
    manifest.append({"id": "broken-0001", **truth("malformed", "web-script", None, None, None, ["someone@victim.test"],
                                                  "pickup", "rejected by Pickup (.bad): no From/Sender")})


def write_logs() -> None:
    proto_head = ["#Software: Microsoft Exchange Server", f"#Version: {VERSION}",
                  "#Log-type: SMTP Receive Protocol Log", f"#Date: {iso(at(0, 0))}",
                  "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,"
                  "event,data,context"]
    rows = [r for _, _, r in sorted(protocol_rows)]
    write(f"{TR}/Logs/FrontEnd/ProtocolLog/SmtpReceive/RECV{DAY.strftime('%Y%m%d')}10-1.LOG",
          ("\r\n".join(proto_head + rows) + "\r\n").encode("utf-8"), at(23, 59))
    track_head = ["#Software: Microsoft Exchange Server", f"#Version: {VERSION}",
                  "#Log-type: Message Tracking Log", f"#Date: {iso(at(0, 0))}", f"#Fields: {TRACK_FIELDS}"]
    rows = [r for _, _, r in sorted(tracking_rows)]
    write(f"{TR}/Logs/MessageTracking/MSGTRK{DAY.strftime('%Y%m%d')}10-1.LOG",
          b"\xef\xbb\xbf" + ("\r\n".join(track_head + rows) + "\r\n").encode("utf-8"), at(23, 59))


def main() -> None:
    if SPOOL.exists():
        shutil.rmtree(SPOOL)
    story()
    write_logs()
    (HERE / "files.json").write_text(json.dumps(dict(sorted(files_meta.items())), indent=1) + "\n")
    (HERE / "manifest.jsonl").write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in manifest))


if __name__ == "__main__":
    main()

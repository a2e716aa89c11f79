"""IIS SMTP W3C, Windows event exports and Exchange 2007+ protocol/tracking logs."""
from queuetool.logs import LogEvent, read_logs
from queuetool.logs.exchange_protocol import endpoint_ip
from queuetool.logs.exchange_tracking import read_exchange_tracking_log
from queuetool.logs.windows_events import account_name, auth_1708, parse_event_time, read_windows_events_log

# research/exchange-formats.md §3 (ossec-docs Exchange 2000 sample), plus AUTH/RCPT lines
# and a restart that writes a new #Fields block with fewer columns.
W3C = """\
#Software: Microsoft Internet Information Services 5.0
#Version: 1.0
#Date: 2006-10-09 05:00:15
#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host cs(User-Agent) cs(Cookie) cs(Referer)
2006-10-09 05:00:15 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 HELO - +36A42160 250 0 48 13 0 SMTP - - - -
2006-10-09 05:00:16 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 MAIL - +FROM:+<EldonpyzWestoncusk@sbcglobal.net> 250 0 57 45 0 SMTP - - - -
2006-10-09 05:00:19 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 DATA - +<4F5002F2.860022@web.de> 250 0 108 1399 1922 SMTP - - - -
2006-10-09 05:00:19 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 QUIT - 36A42160 240 6219 68 4 0 SMTP - - - -
2006-10-09 05:01:04 24.95.255.99 - SMTPSVC1 MEE-PDC 192.168.1.2 0 xxxx - +rr.com 500 0 32 11 0 SMTP - - - -
#Software: Microsoft Internet Information Services 5.0
#Fields: date time c-ip cs-username cs-method cs-uri-query sc-status
2006-10-09 06:00:00 203.0.113.7 printer-7 EHLO +printer-7 250
2006-10-09 06:00:01 203.0.113.7 printer-7 AUTH +LOGIN 235
2006-10-09 06:00:02 203.0.113.7 printer-7 MAIL +FROM:<boss@forged.example> 250
2006-10-09 06:00:02 203.0.113.7 printer-7 RCPT +TO:<v1@a.example> 250
2006-10-09 06:00:02 203.0.113.7 printer-7 RCPT +TO:<v2@b.example> 550
2006-10-09 06:00:03 203.0.113.7 printer-7 DATA +<spam1@forged.example> 250
2006-10-09 06:00:03 203.0.113.7 printer-7 too few
2006-10-09 06:00:04 203.0.113.7 printer-7 QUIT printer-7 240
"""


def test_w3c_sessions_helo_auth_and_messages_across_fields_blocks(tmp_path):
    path = tmp_path / "ex061009.log"
    path.write_text(W3C)
    logset = read_logs([path])
    assert logset.files[0].format == "iis-w3c"
    by_ip = {s.client_ip: s for s in logset.sessions}
    assert len(by_ip) == len(logset.sessions) == 3
    first, garbled, printer = by_ip["24.118.118.106"], by_ip["24.95.255.99"], by_ip["203.0.113.7"]
    assert (first.client_ip, first.helo) == ("24.118.118.106", "36A42160")
    [message] = first.messages
    assert (message.sender, message.message_id) == ("EldonpyzWestoncusk@sbcglobal.net", "<4F5002F2.860022@web.de>")
    assert garbled.client_ip == "24.95.255.99" and not garbled.messages
    assert printer.helo == "printer-7" and printer.details["auth_status"] == ["235"]
    assert printer.auth_user is None  # W3C never names the login
    assert printer.messages[0].recipients == ["v1@a.example"]  # the refused RCPT is not a recipient
    assert logset.files[0].junk == 1


EVENTS_2003 = """\
Event Type:\tInformation
Event Source:\tMSExchangeTransport
Event Category:\tSMTP Protocol
Event ID:\t1708
Date:\t\t10/9/2006
Time:\t\t6:00:01 AM
User:\t\tN/A
Computer:\tMEE-PDC
Description:
SMTP authentication was completed successfully with client 203.0.113.7. The authentication method was Login and the username was EXAMPLE\\scanner.

For more information, see Help and Support Center at http://go.microsoft.com/fwlink/events.asp.
Event Type:\tWarning
Event Source:\tMSExchangeTransport
Event Category:\tSMTP Protocol
Event ID:\t7004
Date:\t\t10/9/2006
Time:\t\t1:15:00 PM
User:\t\tN/A
Computer:\tMEE-PDC
Description:
This is an SMTP protocol error log for virtual server ID 1, connection #12.
"""


def test_event_viewer_text_export_blocks(tmp_path):
    path = tmp_path / "app.txt"
    path.write_bytes(EVENTS_2003.replace("\n", "\r\n").encode("utf-16"))
    events = list(read_windows_events_log(path))
    assert [(e.event_id, e.time, e.level) for e in events] == [
        (1708, "2006-10-09T06:00:01Z", "Information"), (7004, "2006-10-09T13:15:00Z", "Warning")]
    assert auth_1708(events[0]) == ("203.0.113.7", "Login", "EXAMPLE\\scanner")
    assert auth_1708(events[1]) is None
    assert events[1].provider == "MSExchangeTransport" and events[1].computer == "MEE-PDC"


def test_event_viewer_csv_with_header_multiline_and_headerless(tmp_path):
    vista = tmp_path / "app.csv"
    vista.write_text(
        "Level,Date and Time,Source,Event ID,Task Category\n"
        'Information,10/9/2006 6:00:01 AM,MSExchangeTransport,1708,SMTP Protocol,"SMTP authentication was '
        'completed successfully with client mail.partner.example. The authentication method was NTLM and '
        'the username was EXAMPLE\\bob."\n'
        'Error,10/9/2006 6:05:00 PM,MSExchangeTransport,4000,Connection Manager,"Message delivery to the '
        'remote domain failed,\nsecond line"\n')
    events = list(read_windows_events_log(vista))
    assert [(e.event_id, e.time) for e in events] == [(1708, "2006-10-09T06:00:01Z"), (4000, "2006-10-09T18:05:00Z")]
    assert auth_1708(events[0]) == ("mail.partner.example", "NTLM", "EXAMPLE\\bob")
    old = tmp_path / "app2003.csv"
    old.write_text("10/9/2006,6:00:01 AM,MSExchangeTransport,Information,SMTP Protocol,1708,N/A,MEE-PDC,"
                   "SMTP authentication was completed successfully with client 203.0.113.7. The authentication "
                   "method was Login and the username was EXAMPLE\\scanner.\n")
    [event] = read_windows_events_log(old)
    assert event.event_id == 1708 and event.computer == "MEE-PDC" and event.provider == "MSExchangeTransport"
    assert auth_1708(event)[2] == "EXAMPLE\\scanner"


def test_event_xml_and_insertion_strings(tmp_path):
    path = tmp_path / "app.xml"
    path.write_text(
        '<Events><Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
        '<Provider Name="MSExchangeTransport"/><EventID Qualifiers="0">1708</EventID>'
        '<TimeCreated SystemTime="2006-10-09T06:00:01.000Z"/><Computer>MEE-PDC</Computer></System>'
        '<EventData><Data>203.0.113.7</Data><Data>Login</Data><Data>EXAMPLE\\scanner</Data></EventData>'
        '</Event>\n<Event><System><EventID>broken</Event></Events>\n')
    stats_events = read_logs([path])
    [event] = stats_events.events
    assert event.strings == ["203.0.113.7", "Login", "EXAMPLE\\scanner"]
    assert auth_1708(event) == ("203.0.113.7", "Login", "EXAMPLE\\scanner")
    assert stats_events.files[0].junk == 1


def test_event_helpers():
    assert account_name("EXAMPLE\\Scanner") == "scanner" and account_name("bob@example.com") == "bob@example.com"
    assert parse_event_time("27.11.2026", "17:05:00") == "2026-11-27T17:05:00Z"
    assert parse_event_time("11/27/2026", "12:05:00 AM") == "2026-11-27T00:05:00Z"
    assert parse_event_time("not a date") is None
    assert auth_1708(LogEvent("windows-events", event_id=1708, message="something else")) is None


PROTOCOL = """\
#Software: Microsoft Exchange Server
#Version: 15.0.0.0
#Log-type: SMTP Receive Protocol Log
#Date: 2026-11-27T05:00:00.000Z
#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context
2026-11-27T05:00:01.000Z,EX16\\Default Frontend EX16,08DC0000000000A1,0,10.0.0.1:25,203.0.113.7:50123,+,,
2026-11-27T05:00:01.100Z,EX16\\Default Frontend EX16,08DC0000000000A1,1,10.0.0.1:25,203.0.113.7:50123,<,EHLO printer-7,
2026-11-27T05:00:01.200Z,EX16\\Default Frontend EX16,08DC0000000000A1,2,10.0.0.1:25,203.0.113.7:50123,<,AUTH LOGIN,
2026-11-27T05:00:01.300Z,EX16\\Default Frontend EX16,08DC0000000000A1,3,10.0.0.1:25,203.0.113.7:50123,*,EXAMPLE\\scanner,authenticated
2026-11-27T05:00:01.400Z,EX16\\Default Frontend EX16,08DC0000000000A1,4,10.0.0.1:25,203.0.113.7:50123,<,MAIL FROM:<boss@forged.example> SIZE=100,
2026-11-27T05:00:01.500Z,EX16\\Default Frontend EX16,08DC0000000000A1,5,10.0.0.1:25,203.0.113.7:50123,<,RCPT TO:<v1@a.example>,
2026-11-27T05:00:01.600Z,EX16\\Default Frontend EX16,08DC0000000000A1,6,10.0.0.1:25,203.0.113.7:50123,>,"250 2.6.0 <spam1@forged.example> [InternalId=1, Hostname=EX16] Queued mail for delivery",
2026-11-27T05:00:02.000Z,EX16\\Default Frontend EX16,08DC0000000000A2,0,10.0.0.1:25,203.0.113.9:50124,<,AUTH LOGIN,
2026-11-27T05:00:02.100Z,EX16\\Default Frontend EX16,08DC0000000000A2,1,10.0.0.1:25,203.0.113.9:50124,*,,Inbound AUTH LOGIN failed because of LogonDenied
2026-11-27T05:00:02.200Z,EX16\\Default Frontend EX16,08DC0000000000A2,2,10.0.0.1:25,203.0.113.9:50124,*,,User Name: admin
2026-11-27T05:00:02.300Z,broken row
"""


def test_protocol_log_groups_by_session(tmp_path):
    path = tmp_path / "RECV2026112705-1.LOG"
    path.write_bytes(b"\xef\xbb\xbf" + PROTOCOL.encode())
    logset = read_logs([path])
    assert logset.files[0].format == "exchange-protocol"
    login, brute = logset.sessions
    assert (login.auth_user, login.helo, login.client_ip) == ("EXAMPLE\\scanner", "printer-7", "203.0.113.7")
    [message] = login.messages
    assert (message.message_id, message.sender, message.recipients) == (
        "<spam1@forged.example>", "boss@forged.example", ["v1@a.example"])
    assert brute.failed_logins == ["admin"] and brute.auth_user is None
    assert logset.files[0].junk == 1
    assert endpoint_ip("[2001:db8::1]:25") == "2001:db8::1" and endpoint_ip("10.0.0.1:25") == "10.0.0.1"


FIELDS_30 = ("date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,"
             "event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,"
             "total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,"
             "return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,"
             "transport-traffic-type,log-id,schema-version")


def test_tracking_log_30_and_26_field_schemas(tmp_path):
    row30 = ('2026-11-27T05:00:01.700Z,10.0.0.1,EX16,10.0.0.1,EX16,"08DC0000000000A1;2026-11-27T05:00:01.000Z;0",'
             'EX16\\Default Frontend EX16,SMTP,RECEIVE,1234,<spam1@forged.example>,6a3c-1,v1@a.example;v2@b.example,'
             ',100,2,,,"Cheap, meds",boss@forged.example,boss@forged.example,,Incoming,,203.0.113.7,10.0.0.1,,Email,x,15.01')
    path = tmp_path / "MSGTRK2026112705-1.LOG"
    path.write_bytes(b"\xef\xbb\xbf#Software: Microsoft Exchange Server\n#Log-type: Message Tracking Log\n"
                     + f"#Fields: {FIELDS_30}\n{row30}\n".encode())
    [session] = read_exchange_tracking_log(path)
    assert session.session_id == "08DC0000000000A1" and session.client_ip == "203.0.113.7"
    assert session.messages[0].recipients == ["v1@a.example", "v2@b.example"]
    assert session.details["subject"] == "Cheap, meds" and session.details["network_message_id"] == "6a3c-1"
    fields26 = [f for f in FIELDS_30.split(",") if f not in (
        "network-message-id", "custom-data", "transport-traffic-type", "log-id", "schema-version")][:26]
    values = dict(zip(FIELDS_30.split(","), ["x"] * 30))
    values.update({"date-time": "2026-11-27T05:00:01.700Z", "event-id": "RECEIVE", "message-id": "<m@x>",
                   "return-path": "a@b.example", "client-ip": "198.51.100.10", "original-client-ip": ""})
    old = tmp_path / "MSGTRK20101127-1.LOG"
    old.write_text(f"#Fields: {','.join(fields26)}\n" + ",".join(values[f] for f in fields26) + "\n")
    [session] = read_exchange_tracking_log(old)
    assert session.client_ip == "198.51.100.10" and session.messages[0].message_id == "<m@x>"
    assert session.details["network_message_id"] is None


def test_legacy_evt_and_evtx_binary_logs(tmp_path):
    """.evt via dissect.eventlog and .evtx via python-evtx (optional extras); else a clear report."""
    import importlib.util

    from evt_writer import event_record, evt_file

    evt = tmp_path / "AppEvent.Evt"
    evt.write_bytes(evt_file([
        event_record(1, 1795779601, 1708, "MSExchangeTransport", "MAIL", ["203.0.113.7", "Login", "EXAMPLE\\scanner"]),
        event_record(2, 1795779700, 0xC0001B59, "MSExchangeTransport", "MAIL", ["x"], event_type=1),
    ]))
    logset = read_logs([evt])
    assert logset.files[0].format == "windows-events"
    if importlib.util.find_spec("dissect") and importlib.util.find_spec("dissect.eventlog"):
        assert [(e.event_id, e.level) for e in logset.events] == [(1708, "Information"), (7001, "Error")]
        assert auth_1708(logset.events[0]) == ("203.0.113.7", "Login", "EXAMPLE\\scanner")
        assert logset.events[0].time == "2026-11-27T11:40:01Z"
    else:
        assert not logset.events and "dissect.eventlog" in logset.files[0].error
    evtx = tmp_path / "Application.evtx"
    evtx.write_bytes(b"ElfFile\x00" + b"\x00" * 4088)
    logset = read_logs([evtx])
    assert logset.files[0].format == "windows-events" and not logset.events
    if importlib.util.find_spec("Evtx") is None:
        assert "python-evtx" in logset.files[0].error

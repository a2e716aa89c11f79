"""The shared log plumbing: line reading, detection by content, rotation, LogSet."""
import gzip
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from queuetool.logs import (
    LOG_MODULES, LogError, LogStats, detect_log, iter_lines, open_log, parse_iso, read_logs, rotation_order,
)

POSTFIX_LINE = ("Nov 27 05:31:02 mail postfix/smtpd[101]: 4ABC123: client=unknown[203.0.113.6], "
                "sasl_method=LOGIN, sasl_username=scanner\n")


def test_iter_lines_reads_gzip_bom_and_truncated_last_line(tmp_path):
    path = tmp_path / "mail.log.2.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbffirst\r\nsecond caf\xe9\nthird without newline"))
    stats = LogStats(str(path))
    lines = list(iter_lines(path, stats))
    assert lines == [(1, "first"), (2, "second caf\\xe9"), (3, "third without newline")]
    assert stats.lines == 3 and stats.error is None


def test_iter_lines_reads_utf16_exports(tmp_path):
    path = tmp_path / "events.txt"
    path.write_bytes("Event ID:\t1708\r\nDate: 11/27/2026\r\n".encode("utf-16"))
    assert [text for _, text in iter_lines(path)] == ["Event ID:\t1708", "Date: 11/27/2026"]


def test_corrupt_gzip_stops_with_an_error_not_an_exception(tmp_path):
    path = tmp_path / "mail.log.1.gz"
    path.write_bytes(gzip.compress(POSTFIX_LINE.encode() * 50)[:60])
    stats = LogStats(str(path))
    list(iter_lines(path, stats))
    assert stats.error and "read stopped" in stats.error


def test_rotation_order_is_oldest_first():
    names = ["mail.log", "mail.log.1", "mail.log.3.gz", "mail.log.2.gz", "other.log"]
    assert [p.name for p in rotation_order(names)] == [
        "mail.log.3.gz", "mail.log.2.gz", "mail.log.1", "mail.log", "other.log"]


def test_detection_is_by_content_not_name(tmp_path):
    path = tmp_path / "whatever.txt"
    path.write_text(POSTFIX_LINE)
    assert detect_log(path) == "postfix"
    junk = tmp_path / "mail.log"
    junk.write_text("just some notes\n")
    assert detect_log(junk) is None
    try:
        open_log(junk)
    except LogError as exc:
        assert "mail.log" in str(exc)
    else:
        raise AssertionError("an unknown log must raise LogError")


def test_read_logs_reports_unknown_files_and_reads_a_directory(tmp_path):
    (tmp_path / "mail.log").write_text(POSTFIX_LINE + "garbage\n")
    (tmp_path / "notes.txt").write_text("hello\n")
    logset = read_logs([tmp_path])
    by_name = {Path(s.path).name: s for s in logset.files}
    assert by_name["mail.log"].format == "postfix" and by_name["mail.log"].junk == 1
    assert by_name["notes.txt"].error and by_name["notes.txt"].format is None
    assert [s.auth_user for s in logset.sessions] == ["scanner"]
    assert logset.junk == 1


def test_parse_iso_handles_offsets_and_rejects_nonsense():
    assert parse_iso("2026-11-27 05:34:49") == "2026-11-27T05:34:49Z"
    assert parse_iso("2026-11-27T06:34:49.123+01:00") == "2026-11-27T05:34:49Z"
    assert parse_iso("2026-13-40 99:00:00") is None
    assert parse_iso("yesterday") is None


LINE_PARTS = st.sampled_from([
    "Nov 27 05:31:02 mail postfix/smtpd[1]: ", "2026-11-27 05:31:02 ", "#Fields: date time c-ip cs-method\n",
    "4ABC123: ", "client=unknown[203.0.113.6], ", "sasl_username=", "AUTH=server, relay=[", "<=", " A=plain:",
    "Event ID: 1708\n", "Description:\n", "SMTP authentication was completed successfully with client ",
    "Level,Date and Time,Source,Event ID,Task Category\n", '"', ",", "\t", "\n", "\x00", "\xff", "[", "]",
    "session-id,", "*,,User Name: ", "<Event ", "<EventID>1708</EventID></Event>", "#Log-type: SMTP Receive Protocol Log\n",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(LINE_PARTS, st.text(max_size=30)), max_size=40), raw=st.binary(max_size=200))
def test_every_reader_survives_random_and_mutated_lines(tmp_path_factory, parts, raw):
    path = tmp_path_factory.mktemp("fuzz") / "log"
    path.write_bytes("".join(parts).encode("utf-8", "surrogatepass") + raw)
    for fmt in LOG_MODULES:
        opened = open_log(path, fmt)
        items = list(opened)  # must not raise
        assert opened.stats.error is None or "reader failed" not in opened.stats.error, opened.stats.error
        assert all(type(item).__name__ in ("Session", "LogEvent") for item in items)
    detect_log(path)


def _real_lines() -> list[str]:
    """Lines from the committed corpora's logs, one sample per log format."""
    from corpus import CORPORA

    lines: list[str] = []
    for path in sorted(CORPORA.glob("*/logs/*")) + sorted(CORPORA.glob("*/spool/**/*.log")) + sorted(
            CORPORA.glob("*/spool/**/*.LOG")) + sorted(CORPORA.glob("*/spool/EventLogs/*")):
        if path.is_file() and path.stat().st_size < 2_000_000:
            text = path.read_text("utf-8", "replace").splitlines()
            lines.extend(text[:: max(1, len(text) // 40)])
    return lines or [POSTFIX_LINE.strip()]


REAL_LINES = _real_lines()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_readers_survive_mutated_real_lines(tmp_path_factory, data):
    lines = data.draw(st.lists(st.sampled_from(REAL_LINES), min_size=1, max_size=12))
    mutated = []
    for line in lines:
        cut = data.draw(st.integers(0, len(line)))
        action = data.draw(st.sampled_from(["keep", "truncate", "insert", "drop_field", "dup_field"]))
        if action == "truncate":
            line = line[:cut]
        elif action == "insert":
            line = line[:cut] + data.draw(st.text(max_size=8)) + line[cut:]
        elif action in ("drop_field", "dup_field"):
            sep = "," if line.count(",") > line.count(" ") else " "
            parts = line.split(sep)
            i = data.draw(st.integers(0, len(parts) - 1))
            parts = parts[:i] + parts[i + 1:] if action == "drop_field" else parts[:i] + [parts[i]] + parts[i:]
            line = sep.join(parts)
        mutated.append(line)
    header = data.draw(st.sampled_from(["", "#Fields: date time c-ip cs-username s-sitename s-computername s-ip "
                                            "s-port cs-method cs-uri-stem cs-uri-query sc-status\n",
                                        "Level,Date and Time,Source,Event ID,Task Category\n"]))
    path = tmp_path_factory.mktemp("mut") / "log"
    path.write_text(header + "\n".join(mutated), encoding="utf-8", errors="surrogatepass")
    for fmt in LOG_MODULES:
        opened = open_log(path, fmt)
        list(opened)
        assert opened.stats.error is None or "reader failed" not in opened.stats.error, opened.stats.error


def test_rotated_pieces_are_read_as_one_stream(tmp_path):
    """A sendmail connection and a W3C session that span a rotation stay whole."""
    (tmp_path / "mail.log.1.gz").write_bytes(gzip.compress(
        b"Nov 27 23:59:59 mail sm-mta[201]: AUTH=server, relay=[203.0.113.6], authid=scanner, mech=LOGIN, bits=0\n"
        b"junk in the old piece\n"))
    (tmp_path / "mail.log").write_text(
        "Nov 28 00:00:01 mail sm-mta[201]: 5AS00001000201: from=<boss@forged.example>, size=10, class=0, "
        "nrcpts=1, msgid=<x@y>, proto=ESMTPA, daemon=MTA-v4, relay=[203.0.113.6]\n")
    w3c = tmp_path / "w3c"
    w3c.mkdir()
    fields = "#Fields: date time c-ip cs-username cs-method cs-uri-query sc-status\n"
    (w3c / "ex261127.log").write_text(fields + "2026-11-27 23:59:58 203.0.113.7 p EHLO +p 250\n"
                                               "2026-11-27 23:59:59 203.0.113.7 p AUTH +LOGIN 235\n")
    (w3c / "ex261128.log").write_text(fields + "2026-11-28 00:00:01 203.0.113.7 p MAIL +FROM:<a@b.example> 250\n"
                                               "2026-11-28 00:00:02 203.0.113.7 p DATA +<m@x> 250\n"
                                               "2026-11-28 00:00:03 203.0.113.7 p QUIT p 240\n")
    logset = read_logs([tmp_path / "mail.log", tmp_path / "mail.log.1.gz", w3c])
    sendmail = [s for s in logset.sessions if s.source == "sendmail"]
    assert len(sendmail) == 1 and sendmail[0].auth_user == "scanner"
    assert sendmail[0].messages[0].queue_id == "5AS00001000201"
    [session] = [s for s in logset.sessions if s.source == "iis-w3c"]
    assert session.details["auth_status"] == ["235"] and session.messages[0].message_id == "<m@x>"
    by_name = {Path(s.path).name: s for s in logset.files}
    assert set(by_name) == {"mail.log", "mail.log.1.gz", "ex261127.log", "ex261128.log"}
    assert by_name["mail.log.1.gz"].junk == 1 and by_name["mail.log"].junk == 0
    assert by_name["mail.log"].lines == 1 and by_name["ex261128.log"].lines == 4

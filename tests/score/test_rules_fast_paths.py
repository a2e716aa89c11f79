"""The shortcuts the rules take for speed give exactly what the plain way gives."""
from __future__ import annotations

import datetime as dt
import email.utils

from hypothesis import example, given, settings as hsettings, strategies as st

from queuetool.score import rules
from queuetool.score.rules import header_index, injected_locally, is_dsn, login_of

from score.synthetic import GOOD_HEADERS, make_record


def reference_parse_time(value):
    """rules._parse_time as it was: email.utils for every Date."""
    if not value:
        return None
    try:
        if value.endswith("Z") and "T" in value:
            return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=dt.timezone.utc)
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def same_time(got, want):
    if got is None or want is None:
        return got is want
    return got == want and got.utcoffset() == want.utcoffset()


def _digits(low, high, width):
    return st.integers(low, high).map(lambda n: str(n).zfill(width))


date_strings = st.builds(
    lambda dow, day, month, year, hh, mm, ss, sign, zone, tail: (
        f"{dow}{day} {month} {year} {hh}:{mm}:{ss} {sign}{zone}{tail}"),
    st.sampled_from(["", "Mon, ", "Sun, ", "Fri,", "mon, ", "Xyz, "]),
    st.one_of(_digits(0, 99, 1), _digits(0, 99, 2)),
    st.sampled_from(["Jan", "Feb", "Sep", "Dec", "sep", "SEP", "September", "Foo"]),
    st.one_of(_digits(0, 9999, 4), _digits(0, 99, 2)),
    _digits(0, 99, 2), _digits(0, 99, 2), _digits(0, 99, 2),
    st.sampled_from(["+", "-"]),
    st.one_of(_digits(0, 9999, 4), st.sampled_from(["0000", "0100", "0530", "2359", "2400"])),
    st.sampled_from(["", " (UTC)", " ", "\n", " x y", "(UTC)", "\t(CET)", " +0100"]),
)


@hsettings(max_examples=3000, deadline=None)
@given(st.one_of(date_strings, st.text(max_size=40)))
@example("Mon, 21 Sep 2026 14:04:46 +0000")
@example("21 Sep 2026 14:04:46 -0000")
@example("Tue, 29 Feb 2028 23:59:59 -1130 (EST)")
@example("Mon, 31 Sep 2026 14:04:46 +0000")   # no such day
@example("Mon, 21 Sep 0026 14:04:46 +0000")   # two-digit year written with four digits
@example("Mon, 21 Sep 2026 14:04:46 +2400")   # zone out of range
def test_fast_date_parser_agrees_with_email_utils(value):
    assert same_time(rules._parse_time.__wrapped__(value), reference_parse_time(value))


def test_fast_date_parser_takes_the_common_form():
    assert rules._parse_rfc5322_date("Mon, 21 Sep 2026 14:04:46 +0200") == dt.datetime(
        2026, 9, 21, 12, 4, 46, tzinfo=dt.timezone.utc)
    assert rules._parse_rfc5322_date("21 Sep 2026 14:04 +0200") is None  # left to email.utils
    assert rules._parse_time("2026-09-21T14:04:46Z") == dt.datetime(2026, 9, 21, 14, 4, 46, tzinfo=dt.timezone.utc)


PREFILTERED = {
    "auth": (rules.AUTH_RECEIVED_FAST, ["with ESMTPSA", "with esmtpa", "WITH LMTPA", "with UTF8SMTPSA",
                                        "with utf8smtpa", "with ASMTP", "with\tESMTPSA", "with ESMTP",
                                        "(Authenticated sender: bob@example.com)", "authenticated as bob",
                                        "Authenticated user alice;", "authenticated bits=0", "without"]),
    "local": (rules.LOCAL_INJECTION_FAST, ["from userid 33", "with local", "with local-esmtp", "with LOCAL-BSMTP",
                                           "(Exim 4.96)/Submit)", "(from www-data@localhost)", "from localhost",
                                           "[127.0.0.1]", "[::1]", "(from x y@localhost)"]),
    "for": (rules._RECEIVED_FOR_FAST, ["for <dave@example.com>;", "for dave@example.com ;", "FOR <a@b>;", "fore"]),
    "dsn subject": (rules.DSN_SUBJECT_FAST, ["Undelivered Mail", "Delivery Status Notification", "Returned mail",
                                             "failure notice", "Mail delivery failed", "Mail Delivery System",
                                             "non-delivery", "NonDelivery", "non delivery", "Delivery failure",
                                             "delivery has failed", "could not be delivered", "none"]),
    "dsn from": (rules.DSN_FROM_FAST, ["MAILER-DAEMON@x", "postmaster@x", "Mail Delivery System <a@b>",
                                       "mail delivery subsystem", "mail delivery team"]),
    "spam": (rules.SPAM_WORDS_FAST, ["viagra", "Cialis", "levitra", "pharmacy", "pharma", "pill", "pills",
                                     "tramadol", "xanax", "valium", "phentermine", "prescription", "meds",
                                     "medication", "medications", "erectile", "weight loss", "verify your account",
                                     "account suspended", "account has been suspended", "confirm your password",
                                     "confirm your identity", "password expire", "password expires",
                                     "password expired", "unusual sign-in activity", "unusual login activity",
                                     "update your payment", "wire transfer", "lottery", "you have won",
                                     "bitcoin investment", "crypto profit", "pillow", "spills", "medic"]),
}
NOISE = [" ", "  ", "x", "-", ";", "(", ")", "<", ">", "@", "[", "]", ".", ":", "\n", "1", "ſ", "K", "İ", "é"]


def _spans(matches):
    return [(m.span(), m.groups()) for m in matches]


def _pieces(name):
    return st.lists(st.one_of(st.sampled_from(PREFILTERED[name][1]), st.sampled_from(NOISE),
                              st.text(max_size=4)), max_size=12).map("".join)


@hsettings(max_examples=400, deadline=None)
@given(st.data())
def test_prefiltered_search_matches_the_plain_regex(data):
    for name, (fast, _) in PREFILTERED.items():
        text = data.draw(_pieces(name), label=name)
        plain = fast.pattern.search(text)
        got = fast.search(text)
        assert (got and (got.span(), got.groups())) == (plain and (plain.span(), plain.groups())), (name, text)
        assert _spans(fast.finditer(text)) == _spans(fast.pattern.finditer(text)), (name, text)
        assert fast.lower_matches(text) == {m.group(0).lower() for m in fast.pattern.finditer(text)}, (name, text)


def test_prefiltered_finds_every_sample():
    for name, (fast, samples) in PREFILTERED.items():
        for sample in samples:
            for text in (sample, f"x {sample} y", sample.upper()):
                assert _spans(fast.finditer(text)) == _spans(fast.pattern.finditer(text)), (name, text)
                assert fast.lower_matches(text) == {m.group(0).lower() for m in fast.pattern.finditer(text)}


def test_lower_case_search_only_for_patterns_written_in_lower_case():
    assert rules.SPAM_WORDS_FAST._lower is not None and rules.DSN_SUBJECT_FAST._lower is not None
    assert rules.AUTH_RECEIVED_FAST._lower is None and rules.LOCAL_INJECTION_FAST._lower is None
    assert rules.Prefiltered(rules.re.compile(r"\x41b", rules.re.I), ("ab",))._lower is None


HEADERS = ("Received: from a by mail.example.com with ESMTP id 1; Fri, 27 Nov 2026 05:00:00 +0000\n"
           "received: from b by c with ESMTPSA id 2; Fri, 27 Nov 2026 04:00:00 +0000\n"
           "CONTENT-TYPE: multipart/report; report-type=delivery-status\n"
           "Content-Type: text/plain\n" + GOOD_HEADERS)


def test_header_index_gives_the_first_value_of_each_name():
    record = make_record(HEADERS)
    index = header_index(record)
    for name, _ in record.headers:
        for variant in (name, name.lower(), name.upper()):
            assert index[variant.lower()] == record.header(variant)
    assert index["content-type"].startswith("multipart/report")


def test_helpers_give_the_same_with_or_without_a_header_index():
    records = [
        make_record(HEADERS, sender=""),
        make_record(HEADERS, sender=None, header_from=None),
        make_record("Received: from localhost by x with local id 1; Fri, 27 Nov 2026 05:00:00 +0000\n", sender="a@b"),
        make_record("Received: from x (Authenticated sender: carol) by y; Fri, 27 Nov 2026 05:00:00 +0000\n"),
        make_record(GOOD_HEADERS, sender="", client_ip="127.0.0.1"),
        make_record("", sender="", client_ip="not an ip"),
    ]
    records[1].header_from = "MAILER-DAEMON@example.net"
    for record in records:
        index = header_index(record)
        assert login_of(record, index) == login_of(record)
        assert injected_locally(record, index) == injected_locally(record)
        assert is_dsn(record, index) == is_dsn(record)
    assert is_dsn(records[0]) and is_dsn(records[1])
    assert login_of(records[3]) == "carol" and injected_locally(records[2])
    assert injected_locally(records[4]) and not rules.from_outside_client(records[4])
    assert not injected_locally(records[5]) and rules.from_outside_client(records[5])


address_strings = st.one_of(
    st.text(max_size=30),
    st.builds(lambda local, domain: f"{local}@{domain}",
              st.text(alphabet="ab.-_+\n <>\"", max_size=6), st.text(alphabet="aZ09.-\n >", max_size=8)),
)


@hsettings(max_examples=1500, deadline=None)
@given(st.one_of(st.none(), address_strings), st.lists(address_strings, max_size=5))
@example("a@b.test", ["c@d.test\n", "e@f.test"])     # "$" accepts a final newline
@example("a@b.test\nc@d.test", [])                  # one address holding two
@example(None, [])
def test_malformed_address_checks_all_at_once_as_one_by_one(sender, recipients):
    record = make_record(GOOD_HEADERS, sender=sender)
    record.recipients = recipients
    want = [a for a in [sender, *recipients] if a and not rules._ADDRESS.match(a)]
    finding = rules.malformed_address(rules.RuleInput(record=record, settings=rules.Settings()))
    if want:
        assert finding == f"{len(want)} malformed address(es), e.g. {want[0][:80]!r}"
    else:
        assert finding is None

"""Received-chain login evidence: own hops only; markers below them are spoofing signals."""
from hypothesis import given, strategies as st

from queuetool.received import header_auth, own_hop_count, parse_chain, parse_received

# As the corpora's real MTAs wrote them (corpora/postfix, sendmail, exim).
POSTFIX_AUTH = ("from scan (unknown [203.0.113.14]) (Authenticated sender: scanner) by mail.example.com "
                "(Postfix) with ESMTPA id 4jbMj16v2Kz2G655; Fri, 27 Nov 2026 05:41:09 +0000 (UTC)")
POSTFIX_ESMTPA = ("from alice-pc.office.example.com (alice-pc.office.example.com [10.0.0.21]) by mail.example.com "
                  "(Postfix) with ESMTPA id DFB65EB0935 for <joe@partner.example>; Fri, 27 Nov 2026 05:39:00 +0000")
POSTFIX_RELAY = ("from relay-test (unknown [192.0.2.15]) by mail.example.com (Postfix) with ESMTP id "
                 "4jbMhc1r1Dz2G622; Fri, 27 Nov 2026 05:40:48 +0000 (UTC)")
POSTFIX_PICKUP = "by mail.example.com (Postfix, from userid 33) id 2A699EB095D; Fri, 27 Nov 2026 05:40:28 +0000"
SENDMAIL_AUTH = ("from printer-7 ([203.0.113.7]) (authenticated bits=0) by mail.example.com (8.17.1.9/8.17.1.9) "
                 "with ESMTPA id 6AR5gBnY029883; Fri, 27 Nov 2026 05:42:11 GMT")
EXIM_AUTH = ("from [203.0.113.7] (helo=odd.helo) by mail.example.com with esmtpa (Exim 4.96) "
             "(envelope-from <boss@forged.example>) id 1qDO9M-0003B3-2p; Fri, 27 Nov 2026 05:41:00 +0000")
FOREIGN_AUTH = ("from laptop ([198.51.100.7]) (Authenticated sender: mallory) by smtp.elsewhere.example "
                "(Postfix) with ESMTPSA id 1; Fri, 27 Nov 2026 04:00:00 +0000")


def test_parse_received_fields_and_markers():
    hop = parse_received(POSTFIX_AUTH)
    assert (hop.helo, hop.client_ip, hop.by, hop.protocol, hop.queue_id) == (
        "scan", "203.0.113.14", "mail.example.com", "ESMTPA", "4jbMj16v2Kz2G655")
    assert hop.authenticated and hop.auth_user == "scanner"
    assert parse_received(POSTFIX_ESMTPA).authenticated and parse_received(POSTFIX_ESMTPA).auth_user is None
    assert parse_received(POSTFIX_ESMTPA).for_address == "joe@partner.example"
    assert not parse_received(POSTFIX_RELAY).authenticated
    sendmail = parse_received(SENDMAIL_AUTH)
    assert sendmail.authenticated and sendmail.client_ip == "203.0.113.7"
    assert parse_received(EXIM_AUTH).marker == "with esmtpa"
    courier = parse_received("from x ([10.1.1.1]) (AUTH: LOGIN carol) by mx.example.com with ESMTP; Mon")
    assert courier.auth_user == "carol"
    full = parse_received("from x ([10.1.1.1]) (user=dave mech=LOGIN bits=0) by mx.example.com with ESMTP; Mon")
    assert full.auth_user == "dave"


def test_own_hops_and_login_from_the_top_only():
    headers = [("Received", POSTFIX_AUTH), ("Subject", "x")]
    found = header_auth(headers)
    assert (found.auth_user, found.authenticated, found.own_hops) == ("scanner", True, 1)
    assert found.evidence == "header:Received (Authenticated sender)"
    assert (found.client_ip, found.helo) == ("203.0.113.14", "scan")


def test_login_marker_below_a_foreign_hop_is_a_spoofing_signal():
    headers = [("Received", POSTFIX_RELAY), ("Received", FOREIGN_AUTH)]
    found = header_auth(headers)
    assert found.auth_user is None and not found.authenticated
    assert found.spoofed_markers and "smtp.elsewhere.example" in found.spoofed_markers[0]


def test_server_names_decide_which_hops_are_own():
    headers = [("Received", FOREIGN_AUTH)]
    assert header_auth(headers).auth_user == "mallory"            # top hop is taken as the server's
    assert header_auth(headers, ["mail.example.com"]).auth_user is None
    hops = parse_chain([("Received", POSTFIX_PICKUP), ("Received", POSTFIX_RELAY)])
    assert own_hop_count(hops) == 2


def test_user_headers_count_only_above_the_first_foreign_hop():
    trusted = [("X-Authenticated-User", "bob"), ("Received", POSTFIX_ESMTPA)]
    assert header_auth(trusted).auth_user == "bob"
    spoof = [("Received", POSTFIX_RELAY), ("Received", FOREIGN_AUTH), ("X-Authenticated-User", "ceo")]
    found = header_auth(spoof)
    assert found.auth_user is None and any("ceo" in m for m in found.spoofed_markers)
    cpanel = [("X-Get-Message-Sender-Via", "mail.example.com: authenticated_id: erin/from_h"),
              ("Received", POSTFIX_RELAY)]
    assert header_auth(cpanel).auth_user == "erin"


def test_exchange_authas_internal_is_authenticated_only_from_own_hops():
    own = [("Received", "from pc ([10.0.0.5]) by EX16.example.com with Microsoft SMTP Server id 15.1; Mon"),
           ("X-MS-Exchange-Organization-AuthAs", "Internal")]
    assert header_auth(own).authenticated
    anonymous = [("Received", "from x ([192.0.2.1]) by EX16.example.com with Microsoft SMTP Server; Mon"),
                 ("X-MS-Exchange-Organization-AuthAs", "Anonymous")]
    assert not header_auth(anonymous).authenticated


@given(st.lists(st.tuples(st.sampled_from(["Received", "X-Authenticated-User", "X-MS-Exchange-Organization-AuthAs",
                                           "X-Get-Message-Sender-Via", "Subject"]),
                          st.text(max_size=200)), max_size=30))
def test_header_auth_never_raises(headers):
    found = header_auth(headers)
    assert found.own_hops <= sum(1 for name, _ in headers if name == "Received")


def test_exchange_authas_from_another_server_is_a_spoofing_signal():
    # corpora/exchange2016 756512a2-0012: a phishing kit's injected org headers
    headers = [("Received", "from mailer.attacker.example (203.0.113.9) by MAIL16.example.com (10.0.0.6) with "
                            "Microsoft SMTP Server id 15.1.2507.6; Thu, 26 Nov 2026 10:40:00 +0000"),
               ("X-MS-Exchange-Organization-AuthAs", "Internal"),
               ("X-MS-Exchange-Organization-AuthSource", "EXCH01.corp.local")]
    found = header_auth(headers)
    assert not found.authenticated and "EXCH01.corp.local" in found.spoofed_markers[0]
    headers[2] = ("X-MS-Exchange-Organization-AuthSource", "MAIL16.example.com")
    assert header_auth(headers).authenticated


def test_login_header_with_nothing_after_the_host_is_no_login():
    from queuetool.received import header_auth

    headers = [("Received", "from a (a [192.0.2.1]) by mx.example.com with ESMTP id X; Mon, 1 Jan 2026 00:00:00 +0000"),
               ("X-Authenticated-Sender", "host: ")]
    found = header_auth(headers)
    assert found.auth_user is None and not found.authenticated

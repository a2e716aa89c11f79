"""config: settings from options and queuetool.toml, domain checks, domain inference."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from queuetool import config
from queuetool.cli import main
from queuetool.config import (
    ConfigError, Settings, infer_domains, load_settings, normalize_domain, with_inferred_domains,
)

from corpus import CORPORA
from score.synthetic import make_record


def test_options_and_file_are_merged(tmp_path):
    config = tmp_path / "queuetool.toml"
    config.write_text('[domains]\nlocal = ["Example.COM"]\nrelay = ["relay.example"]\n'
                      '[weights]\nrecipient_fanout = 3.5\n[thresholds]\nspam = 7\n')
    settings = load_settings(config, local_domains=["other.example"], shared_domains=["@split.example"])
    assert settings.local_domains == {"example.com", "other.example"}
    assert settings.relay_domains == {"relay.example"}
    assert settings.shared_domains == {"split.example"}
    assert settings.points("recipient_fanout", 2.0) == 3.5
    assert settings.points("missing_date", 1.0) == 1.0
    assert settings.threshold("spam") == 7.0 and settings.threshold("relay") == 5.0


def test_is_ours_covers_subdomains_of_every_kind():
    settings = Settings(local_domains=frozenset({"example.com"}), relay_domains=frozenset({"r.example"}))
    assert settings.is_ours("mail.example.com") and settings.is_ours("EXAMPLE.com.")
    assert settings.is_ours("r.example") and not settings.is_local("r.example")
    assert not settings.is_ours("notexample.com") and not settings.is_ours(None)
    assert not settings.is_ours("com")


@pytest.mark.parametrize("text, message", [
    ("[domains]\nlocal = 5\n", "list of domain names"),
    ("[domains]\nlocal = ['not a domain']\n", "not a domain name"),
    ("[weights]\nno_such_rule = 1\n", "unknown rule"),
    ("[weights]\nmissing_date = 'high'\n", "must be a number"),
    ("[thresholds]\nurgent = 1\n", "unknown name"),
    ("this is = = not toml", "not valid TOML"),
])
def test_bad_settings_files_give_one_line_reasons(tmp_path, text, message):
    config = tmp_path / "queuetool.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_missing_file_and_bad_option():
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings("/nonexistent/queuetool.toml")
    with pytest.raises(ConfigError):
        normalize_domain("bad domain!")


def test_inference_uses_server_name_and_own_logins_not_forged_senders():
    server = "Received: from pc by mail.example.com with ESMTPA id 1; Fri, 27 Nov 2026 05:00:00 +0000\n"
    records = [make_record(server, sender="alice@corp.example", auth_user="alice") for _ in range(3)]
    records += [make_record(server, sender=f"promo{i}@forged{i}.test", auth_user="scanner") for i in range(20)]
    domains, evidence = infer_domains(records)
    assert domains == ["example.com"]  # corp.example: 3 of 23 authenticated, below a quarter
    assert "Received" in evidence
    owned = [make_record("", sender="bob@corp.example", auth_user="bob") for _ in range(5)]
    assert infer_domains(owned)[0] == ["corp.example"]


def test_with_inferred_domains_marks_settings():
    given = Settings(local_domains=frozenset({"example.com"}))
    assert with_inferred_domains(given, []) is given
    guessed = with_inferred_domains(Settings(), [])
    assert guessed.domains_inferred and guessed.local_domains == frozenset()
    assert "no domain" in guessed.inference_evidence


def test_cli_bad_config_is_one_line_exit_1(tmp_path):
    config = tmp_path / "queuetool.toml"
    config.write_text("[weights]\nno_such_rule = 1\n")
    result = CliRunner().invoke(main, ["scan", str(CORPORA / "postfix" / "spool"), "--config", str(config)])
    assert result.exit_code == 1
    assert result.stderr.startswith("queuetool: ") and "no_such_rule" in result.stderr


def test_cli_scan_fills_verdicts_with_given_domains():
    result = CliRunner().invoke(main, ["scan", str(CORPORA / "postfix" / "spool"), "--local-domain", "example.com",
                                       "--format", "jsonl", "-q", "-j", "1"])
    assert result.exit_code in (0, 3), result.output
    import json

    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records and all(r["verdict"] in ("spam", "relay", "backscatter", "clean") for r in records)
    assert any(r["campaign"] for r in records)
    assert "inferred" not in result.stderr
    assert not any(h["rule"] == "inferred_domains" for r in records for h in r["rules"])


def test_domain_memos_give_the_same_answers_stay_bounded_and_are_not_pickled():
    import pickle

    settings = Settings(local_domains=frozenset({"example.com"}), relay_domains=frozenset({"r.example"}))
    domains = [f"h{i}.example.com" if i % 3 == 0 else f"d{i}.test" for i in range(config.MEMO_LIMIT + 50)]
    for _ in range(2):  # second pass answers from the memo (or after it was cleared)
        assert [settings.is_ours(d) for d in domains] == [i % 3 == 0 for i in range(len(domains))]
        assert not any(settings.is_local(d) for d in domains[1::3])
        assert len(settings._ours_memo) <= config.MEMO_LIMIT
    assert settings.is_ours("R.EXAMPLE.") and not settings.is_local("R.EXAMPLE.")
    copy = pickle.loads(pickle.dumps(settings))
    assert copy == settings and not copy._ours_memo and copy.is_ours("mail.example.com")
    assert settings.our_domains == {"example.com", "r.example"}
    assert settings.threshold("spam") == 5.0 and settings.threshold("spam") == 5.0


def _reference_address_domain(address):
    """config.address_domain before it remembered domains."""
    if not address or "@" not in address:
        return None
    domain = address[address.rindex("@") + 1:].strip().strip(">").lower().rstrip(".")
    return domain or None


@pytest.mark.parametrize("address", [
    None, "", "alice", "a@", "@", "a@@b", "a@Example.COM", "<a@b.test>", "a@b.test.", "a@b. >", "a@ B.> ",
    "a@ .", "a@b@c.TEST", "a@ΣΑΣ.test", "a@\u00df.test"])
def test_address_domain_remembers_what_it_computed(address):
    for _ in range(2):  # the second answer comes from the memo
        assert config.address_domain(address) == _reference_address_domain(address)


def test_address_domains_is_address_domain_of_each():
    addresses = [None, "", "alice", "a@Example.COM", "b@example.com", "<c@B.test>", "d@b.test.", "e@", "@", "f@b.test"]
    for _ in range(2):  # the second time from the memo
        assert config.address_domains(addresses) == [_reference_address_domain(a) for a in addresses]
    config._DOMAIN_MEMO["b.test"] = "b.test"
    assert config.address_domains(["b.test"]) == [None]  # no "@": never read from the memo


def test_address_domain_memo_stays_bounded():
    for i in range(config.MEMO_LIMIT + 50):
        assert config.address_domain(f"u@D{i}.Test") == f"d{i}.test"
    assert len(config._DOMAIN_MEMO) <= config.MEMO_LIMIT

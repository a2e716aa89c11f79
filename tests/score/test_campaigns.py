"""Campaign features, the streaming sketch and union-find behind stable campaign ids."""
from __future__ import annotations

from hypothesis import given, settings as hsettings, strategies as st

from queuetool.score.campaigns import (
    CountMinSketch, KeyUnion, campaign_keys, feature_key, sender_pattern, simhash, subject_skeleton,
)

from score.synthetic import make_record


def test_subject_skeleton_drops_prefixes_digits_and_recipient_names():
    assert subject_skeleton("Re: FWD: Your order #4811 for mary", ["mary@x.test"]) == "your order # for"
    assert subject_skeleton("Save 80% today") == subject_skeleton("save 75% TODAY!")


def test_sender_pattern_shape():
    assert sender_pattern("promo12@bulk.test") == sender_pattern("promo7@other.test") == "a9@*"
    assert sender_pattern("") == "<>"
    assert sender_pattern(None) == "?"


def test_simhash_close_for_near_duplicates():
    base = "buy cheap pills from our licensed online pharmacy today with discreet worldwide shipping " * 3
    near = base.replace("today", "now", 1)
    other = "minutes of the quarterly budget meeting with the finance team and next steps for the audit " * 3
    distance = bin(simhash(base) ^ simhash(near)).count("1")
    assert distance < bin(simhash(base) ^ simhash(other)).count("1")
    assert simhash("two words") == 0


def test_campaign_keys_share_template_across_varying_subjects():
    one = make_record("From: Pharmacy <a@rx.test>\nMessage-ID: <1@mail.example.com>\nSubject: Cheap pills\n",
                      sender="promo@rx.test")
    two = make_record("From: Pharmacy <b@rx2.test>\nMessage-ID: <2@mail.example.com>\nSubject: Meds 80% off\n",
                      sender="deals@rx2.test")
    assert set(campaign_keys(one)) & set(campaign_keys(two))
    unrelated = make_record("From: Alice Adams <alice@example.com>\nSubject: Quarterly figures\n",
                            sender="alice@example.com")
    assert not set(campaign_keys(one)) & set(campaign_keys(unrelated))


def test_generic_subjects_make_no_key():
    assert campaign_keys(make_record("Subject: test\n")) == []


def test_feature_key_is_stable_hex():
    assert feature_key("subject", "x") == feature_key("subject", "x")
    assert len(feature_key("subject", "x")) == 16 and int(feature_key("subject", "x"), 16) >= 0


@given(st.lists(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16), max_size=200))
@hsettings(max_examples=50, deadline=None)
def test_count_min_sketch_never_undercounts(keys):
    sketch = CountMinSketch(width=64, depth=3)
    for key in keys:
        sketch.add(key)
    for key in set(keys):
        assert sketch.count(key) >= keys.count(key)


@given(st.lists(st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=4), max_size=30), st.randoms())
@hsettings(max_examples=100, deadline=None)
def test_union_roots_are_component_minimum_in_any_order(groups, rnd):
    first, second = KeyUnion(), KeyUnion()
    for group in groups:
        first.union(group)
    shuffled = [list(g) for g in groups]
    rnd.shuffle(shuffled)
    for group in shuffled:
        rnd.shuffle(group)
        second.union(group)
    for key in first.parent:
        assert first.find(key) == second.find(key)
        assert first.find(key) <= key


def _reference_skeleton(subject, recipients=()):
    """subject_skeleton as first written (re.sub everywhere), to check the faster one."""
    import re

    from queuetool.score import campaigns

    text = campaigns._PREFIX.sub("", subject or "").lower()
    for rcpt in recipients:
        local = rcpt.split("@", 1)[0].lower()
        if len(local) >= 3:
            text = text.replace(local, " ")
    text = re.sub("#+", "#", campaigns._DIGITS.sub("#", text))
    return " ".join(re.sub(r"[^\w#]+", " ", text).split())


_SUBJECT_PIECES = st.sampled_from(["Re:", "re :", "FWD: ", "Fw[2]:", "AW:", " ", "#", "##", "12", "mary",
                                   "Your order", "ſ", "İ", "!", ":", "\t", "tr:x"])


@hsettings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), st.lists(st.one_of(_SUBJECT_PIECES, st.text(max_size=3)), max_size=10).map("".join)),
       st.lists(st.sampled_from(["mary@x.test", "Ab@y", "İstanbul@z", "order@q", "@"]), max_size=3))
def test_subject_skeleton_matches_the_reference(subject, recipients):
    assert subject_skeleton(subject, recipients) == _reference_skeleton(subject, recipients)
    assert feature_key("subject", subject or "") == feature_key.__wrapped__("subject", subject or "")


def test_no_whitespace_character_is_a_word_character():
    import re
    import sys

    assert not [c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace() and re.match(r"\w", c)]


@given(st.one_of(st.none(), st.lists(st.one_of(_SUBJECT_PIECES, st.sampled_from(["<", '"', "<a@b>"]),
                                               st.text(max_size=3)), max_size=8).map("".join)))
def test_display_name_matches_the_reference(value):
    import re

    from queuetool.score import campaigns

    want = ""
    if value and "<" in value:
        name = value.split("<", 1)[0].strip().strip('"').lower()
        want = " ".join(re.sub(r"[^\w#]+", " ", campaigns._DIGITS.sub("#", name)).split())
    assert campaigns._display_name(value) == want


@given(st.lists(st.sampled_from([feature_key("subject", str(i)) for i in range(40)]), max_size=200))
def test_count_min_sketch_adding_counts_at_once_equals_adding_one_by_one(keys):
    one_by_one, at_once = CountMinSketch(width=64, depth=3), CountMinSketch(width=64, depth=3)
    for key in keys:
        one_by_one.add(key)
    for key in set(keys):
        at_once.add(key, keys.count(key))
    assert one_by_one.rows == at_once.rows


def test_count_min_sketch_rows_spread_keys():
    """Every row must spread keys over its width (a row sending all keys to one slot
    would silently make the sketch shallower and count more false repeats)."""
    sketch = CountMinSketch(width=1 << 12, depth=4)
    keys = [feature_key("subject", str(i)) for i in range(2000)]
    for key in keys:
        sketch.add(key)
    for row in sketch.rows:
        assert max(row) <= 8 and sum(1 for c in row if c) > 1500
    assert sum(1 for key in keys if sketch.count(key) >= 2) < 80  # ~46 expected with 4 working rows

"""output.to_json_line: orjson when installed, the stdlib encoder for what orjson refuses —
both must give the same text, so JSONL never depends on which one ran."""
from __future__ import annotations

import dataclasses
import datetime
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuetool import output
from queuetool.spools import open_spool
from corpus import corpus_dir

STDLIB = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)

json_scalars = (st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1)
                | st.text() | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@pytest.mark.skipif(output.orjson is None, reason="orjson not installed: only the stdlib encoder runs")
def test_orjson_is_used_when_installed(monkeypatch):
    calls = []
    real = output.orjson.dumps
    monkeypatch.setattr(output.orjson, "dumps", lambda *a, **k: calls.append(1) or real(*a, **k))
    output.to_json_line({"a": 1})
    assert calls == [1]


@given(json_values)
@settings(max_examples=300)
def test_same_json_as_the_stdlib_encoder(value):
    line = output.to_json_line(value)
    assert json.loads(line) == json.loads(STDLIB.encode(value))
    assert "\n" not in line


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20))
@settings(max_examples=300)
def test_same_text_as_the_stdlib_encoder_without_floats(value):
    assert output.to_json_line(value) == STDLIB.encode(value)


@pytest.mark.parametrize("value", [
    {"files": ["deferred/\udcff\udcfe"]},          # undecodable file name (surrogateescape)
    {"size": 2 ** 70},                              # beyond 64 bits
    {1: "non-string key", None: "x"},
    {"when": datetime.datetime(2026, 11, 27, 10, 0, tzinfo=datetime.timezone.utc)},
    {"obj": object.__new__(dataclasses.make_dataclass("Fact", ["a"]))},
])
def test_values_orjson_refuses_or_treats_differently_match_the_stdlib(value):
    if "obj" in value:
        value["obj"].a = 1
    assert output.to_json_line(value) == STDLIB.encode(value)


@pytest.mark.parametrize("corpus", ["postfix", "exim", "sendmail", "exchange2003", "eml"])
def test_records_of_the_corpora_render_byte_identical(corpus):
    spool = open_spool(corpus_dir(corpus) / "spool")
    records = list(spool)
    assert records
    for record in records:
        data = record.to_dict(with_headers=True)
        assert output.render_record(record, "jsonl", with_headers=True) == STDLIB.encode(data)

"""The optional speed-ups give the same results as the standard library."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responder import speed

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
)
TREES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner), st.dictionaries(st.text(), inner)),
    max_leaves=20,
)


@given(TREES)
def test_orjson_writes_what_json_writes(value: Any) -> None:
    pytest.importorskip("orjson")
    fast = speed._dumps_orjson(value)
    assert json.loads(fast) == json.loads(speed._dumps_std(value))


@given(st.dictionaries(st.text(), st.one_of(st.text(), st.lists(st.text()), st.integers())))
def test_orjson_bytes_match_for_replies(value: dict[str, Any]) -> None:
    # Reply bodies and stored calls hold texts, lists and integers: byte for byte the same.
    pytest.importorskip("orjson")
    assert speed._dumps_orjson(value) == speed._dumps_std(value)

"""marketplace.memo: exact-input memoization, bounded (no app, no database)."""

from __future__ import annotations

import pytest

from marketplace.memo import Memo


def test_a_hit_needs_the_same_key_and_an_equal_input():
    memo = Memo(4)
    memo.put("pool:1", ((0, 1, "Title"),), b"body")
    assert memo.get("pool:1", ((0, 1, "Title"),)) == b"body"
    assert memo.get("pool:1", ((0, 1, "Renamed"),)) is None  # other data: a miss, never the old value
    assert memo.get("pool:2", ((0, 1, "Title"),)) is None


def test_put_replaces_what_a_key_had():
    memo = Memo(4)
    memo.put(1, "old rows", "old")
    memo.put(1, "new rows", "new")
    assert memo.get(1, "old rows") is None
    assert memo.get(1, "new rows") == "new"
    assert len(memo) == 1


def test_the_bound_drops_the_least_recently_used():
    memo = Memo(2)
    memo.put(1, "a", "A")
    memo.put(2, "b", "B")
    assert memo.get(1, "a") == "A"  # 1 is now the most recently used
    memo.put(3, "c", "C")
    assert len(memo) == 2
    assert memo.get(2, "b") is None
    assert memo.get(1, "a") == "A" and memo.get(3, "c") == "C"


def test_get_or_compute_computes_once_per_input():
    memo, calls = Memo(2), []

    def compute():
        calls.append(1)
        return len(calls)

    assert memo.get_or_compute("k", "x", compute) == 1
    assert memo.get_or_compute("k", "x", compute) == 1
    assert memo.get_or_compute("k", "y", compute) == 2
    assert len(calls) == 2


def test_a_memo_holds_at_least_one_entry():
    with pytest.raises(ValueError):
        Memo(0)

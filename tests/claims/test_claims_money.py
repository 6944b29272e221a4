"""Red-packet arithmetic: the lucky split always conserves the total, every share >= 1 fen."""

from __future__ import annotations

import random
from contextlib import nullcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claims.errors import InvalidPacket
from claims.money import fen_to_cny, lucky_share, next_share, split_all, validate_split


@settings(max_examples=400, deadline=None)
@given(
    total=st.integers(min_value=1, max_value=10**9),
    count=st.integers(min_value=1, max_value=2000),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_lucky_split_conserves_total_and_pays_every_share(total: int, count: int, seed: int) -> None:
    if total < count:
        with pytest.raises(InvalidPacket):
            split_all(total, count, mode="lucky", rng=random.Random(seed))
        return
    shares = split_all(total, count, mode="lucky", rng=random.Random(seed))
    assert len(shares) == count
    assert sum(shares) == total
    assert min(shares) >= 1
    assert all(isinstance(s, int) for s in shares)


@settings(max_examples=300, deadline=None)
@given(
    remaining=st.integers(min_value=2, max_value=10**8),
    left=st.integers(min_value=2, max_value=500),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_each_lucky_draw_is_within_double_mean(remaining: int, left: int, seed: int) -> None:
    if remaining < left:
        return
    share = lucky_share(remaining, left, rng=random.Random(seed))
    assert 1 <= share <= max(1, 2 * remaining // left)
    assert remaining - share >= left - 1  # every later share can still get 1 fen


def test_last_share_takes_the_remainder() -> None:
    assert lucky_share(777, 1) == 777
    assert next_share(mode="fixed", total_fen=300, count=3, remaining_fen=100, remaining_count=1) == 100


def test_lucky_draw_is_roughly_uniform_up_to_double_mean() -> None:
    rng = random.Random(1)
    draws = [lucky_share(10_000, 10, rng=rng) for _ in range(20_000)]
    assert min(draws) == 1 and max(draws) == 2000
    assert abs(sum(draws) / len(draws) - 1000.5) < 15  # uniform on [1, 2000] has mean 1000.5


def test_fixed_split_is_equal() -> None:
    assert split_all(1000, 4, mode="fixed") == [250, 250, 250, 250]


@pytest.mark.parametrize(
    ("total", "count", "mode", "expect"),
    [
        (100, 3, "lucky", nullcontext()),
        (100, 3, "fixed", pytest.raises(InvalidPacket)),  # 100 fen do not split evenly in 3
        (2, 3, "lucky", pytest.raises(InvalidPacket)),  # a share would be 0 fen
        (100, 0, "lucky", pytest.raises(InvalidPacket)),
        (1.5, 1, "lucky", pytest.raises(InvalidPacket)),  # fen are integers
        (True, 1, "lucky", pytest.raises(InvalidPacket)),
        (100, 2, "random", pytest.raises(InvalidPacket)),
    ],
)
def test_validate_split(total, count, mode, expect) -> None:  # type: ignore[no-untyped-def]
    with expect:
        validate_split(total, count, mode=mode)


def test_fen_to_cny() -> None:
    assert fen_to_cny(12345) == "123.45"
    assert fen_to_cny(5) == "0.05"
    assert fen_to_cny(-120) == "-1.20"

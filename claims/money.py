"""Red-packet money arithmetic: integer fen only, the sum of all shares is conserved exactly.

The lucky split draws each share at claim time, uniform in ``[1, 2 * remaining // remaining_count]``
(the "double mean" rule used at scale), further capped so every later share can still get 1 fen;
the last share takes the remainder. The fixed split gives every share ``total // count`` and
requires the total to divide evenly, so nobody receives a different "equal" amount.
"""

from __future__ import annotations

import random
import secrets
from typing import Literal, Protocol

from claims.errors import InvalidPacket

Mode = Literal["fixed", "lucky"]

#: The draw for real money: unpredictable (a claimant cannot time a claim to get a big share).
SYSTEM_RNG: random.Random = secrets.SystemRandom()


class IntRng(Protocol):
    def randint(self, a: int, b: int) -> int: ...


def validate_split(total_fen: int, count: int, *, mode: Mode) -> None:
    """Reject a packet whose total cannot be split into ``count`` shares of at least 1 fen."""
    if isinstance(total_fen, bool) or not isinstance(total_fen, int):
        raise InvalidPacket("total_fen must be an integer number of fen")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidPacket("count must be a positive integer")
    if total_fen < count:
        raise InvalidPacket("total_fen must give every share at least 1 fen", total_fen=total_fen)
    if mode == "fixed" and total_fen % count:
        raise InvalidPacket("a fixed packet's total_fen must be a multiple of count")
    if mode not in ("fixed", "lucky"):
        raise InvalidPacket(f"unknown mode {mode!r}")


def lucky_share(remaining_fen: int, remaining_count: int, *, rng: IntRng = SYSTEM_RNG) -> int:
    """Draw the next lucky share.

    Parameters
    ----------
    remaining_fen : int
        Fen not yet granted (>= remaining_count).
    remaining_count : int
        Shares not yet granted (>= 1).
    rng : object with ``randint(a, b)`` (inclusive)
        Seeded ``random.Random`` in tests and the simulator; the system RNG for real money.

    Returns
    -------
    int
        The share in fen, in ``[1, remaining_fen - (remaining_count - 1)]``; exactly
        ``remaining_fen`` when ``remaining_count == 1``.
    """
    if remaining_count < 1:
        raise InvalidPacket("no shares left to draw")
    if remaining_fen < remaining_count:
        raise InvalidPacket("remaining amount cannot give every share 1 fen")
    if remaining_count == 1:
        return remaining_fen
    upper = min(2 * remaining_fen // remaining_count, remaining_fen - (remaining_count - 1))
    return rng.randint(1, max(1, upper))


def fixed_share(total_fen: int, count: int) -> int:
    """Every fixed share (the total divides evenly, see :func:`validate_split`)."""
    return total_fen // count


def next_share(
    *,
    mode: Mode,
    total_fen: int,
    count: int,
    remaining_fen: int,
    remaining_count: int,
    rng: IntRng = SYSTEM_RNG,
) -> int:
    """The share the next claimant receives."""
    if mode == "fixed":
        if remaining_count < 1:
            raise InvalidPacket("no shares left to draw")
        return remaining_fen if remaining_count == 1 else fixed_share(total_fen, count)
    return lucky_share(remaining_fen, remaining_count, rng=rng)


def split_all(total_fen: int, count: int, *, mode: Mode, rng: IntRng = SYSTEM_RNG) -> list[int]:
    """Draw every share in claim order (what a packet pays out if all shares are claimed)."""
    validate_split(total_fen, count, mode=mode)
    shares: list[int] = []
    remaining, left = total_fen, count
    while left:
        share = next_share(
            mode=mode,
            total_fen=total_fen,
            count=count,
            remaining_fen=remaining,
            remaining_count=left,
            rng=rng,
        )
        shares.append(share)
        remaining -= share
        left -= 1
    return shares


def fen_to_cny(fen: int) -> str:
    """``12345 -> '123.45'`` (display only; never compute with it)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"

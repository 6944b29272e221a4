"""Listen-session tokens and the heartbeat MAC.

A token is ``base64url(json claims) "." base64url(HMAC-SHA256(secret, "listen-token|" + claims))``
and binds the session to one packet, one claimant and one device; it carries server times only.
Each session also has a heartbeat key, ``HMAC(secret, "hb-key|" + session_id)``, handed to the
client once; every heartbeat carries ``HMAC(hb_key, canonical message)`` where the canonical
message chains the previous server nonce, so heartbeats cannot be forged, replayed, reordered or
moved to another session. Next nonces are derived from the server secret, so they are
unpredictable to the client yet need no random state (the simulator stays deterministic).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass

from claims.errors import TokenInvalid

TOKEN_VERSION = 1


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def _mac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


@dataclass(frozen=True)
class TokenClaims:
    session_id: str
    packet_id: str
    claimant_id: str
    device_id: str
    issued_at: int  # unix seconds, server clock
    expires_at: int  # unix seconds, server clock


def issue_token(claims: TokenClaims, *, secret: bytes) -> str:
    body = json.dumps(
        {
            "v": TOKEN_VERSION,
            "sid": claims.session_id,
            "pid": claims.packet_id,
            "cid": claims.claimant_id,
            "did": claims.device_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    payload = _b64e(body)
    return f"{payload}.{_b64e(_mac(secret, 'listen-token|' + payload))}"


def verify_token(token: str, *, secret: bytes, now: dt.datetime) -> TokenClaims:
    """Check the signature and expiry; raise :class:`TokenInvalid` otherwise.

    The caller still compares the claims with the session row (packet, claimant, device).
    """
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 4096:
        raise TokenInvalid("malformed listen token")
    payload, sig = token.split(".")
    try:
        given = _b64d(sig)
    except (ValueError, TypeError) as exc:
        raise TokenInvalid("malformed listen token") from exc
    if not hmac.compare_digest(given, _mac(secret, "listen-token|" + payload)):
        raise TokenInvalid("listen token signature does not verify")
    try:
        data = json.loads(_b64d(payload))
        claims = TokenClaims(
            session_id=str(data["sid"]),
            packet_id=str(data["pid"]),
            claimant_id=str(data["cid"]),
            device_id=str(data["did"]),
            issued_at=int(data["iat"]),
            expires_at=int(data["exp"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenInvalid("malformed listen token") from exc
    if data.get("v") != TOKEN_VERSION:
        raise TokenInvalid("unsupported listen token version")
    if now.timestamp() >= claims.expires_at:
        raise TokenInvalid("listen token expired")
    return claims


def heartbeat_key(session_id: str, *, secret: bytes) -> bytes:
    """The per-session MAC key (32 bytes); the client receives it base64url-encoded."""
    return _mac(secret, "hb-key|" + session_id)


def encode_key(key: bytes) -> str:
    return _b64e(key)


def decode_key(text: str) -> bytes:
    return _b64d(text)


def canonical_heartbeat(
    session_id: str, *, seq: int, position_ms: int, rate_milli: int, paused: bool, prev_nonce: str
) -> str:
    """The exact string a heartbeat MAC covers (``|``-joined; rate in thousandths, so no floats)."""
    return f"hb1|{session_id}|{seq}|{position_ms}|{rate_milli}|{1 if paused else 0}|{prev_nonce}"


def rate_to_milli(rate: float) -> int:
    """Playback rate as integer thousandths (``1.0 -> 1000``): the form the MAC and checks use."""
    return int(round(rate * 1000))


def heartbeat_mac(
    key: bytes,
    session_id: str,
    *,
    seq: int,
    position_ms: int,
    rate_milli: int,
    paused: bool,
    prev_nonce: str,
) -> str:
    """Hex HMAC-SHA256 of :func:`canonical_heartbeat` (what clients send as ``mac``)."""
    msg = canonical_heartbeat(
        session_id,
        seq=seq,
        position_ms=position_ms,
        rate_milli=rate_milli,
        paused=paused,
        prev_nonce=prev_nonce,
    )
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).hexdigest()


def macs_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))


def next_nonce(session_id: str, seq: int, mac: str, *, secret: bytes) -> str:
    """The nonce the next heartbeat must chain (seq 0 = the first nonce of the session)."""
    return _b64e(_mac(secret, f"nonce|{session_id}|{seq}|{mac}")[:16])

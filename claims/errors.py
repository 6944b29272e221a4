"""claims exception tree (see core.errors for the contract: stable code, HTTP status, title).

The codes are the reason codes a claimant's app sees in problem+json (``code``); they are part of
the public API, so they never change meaning.
"""

from __future__ import annotations

from typing import Any

from core.errors import SonggateError


class ClaimsError(SonggateError):
    code = "claims_error"
    status = 422
    title = "Claims request failed"
    #: Commit the transaction's trace (audit row, rejection counter) before the error surfaces.
    persist = False


# --- input / lookup ---------------------------------------------------------------------------
class InvalidPacket(ClaimsError):
    code = "invalid_packet"
    status = 422
    title = "Invalid red packet"


class PacketNotFound(ClaimsError):
    code = "packet_not_found"
    status = 404
    title = "Red packet not found"


class RecordingNotFound(ClaimsError):
    code = "recording_not_found"
    status = 404
    title = "Recording not found"


class SessionNotFound(ClaimsError):
    code = "session_not_found"
    status = 404
    title = "Listen session not found"


class TokenInvalid(ClaimsError):
    code = "token_invalid"
    status = 401
    title = "Listen token invalid"


class SessionMismatch(ClaimsError):
    """The session (or its token) belongs to another packet, claimant or device."""

    code = "session_mismatch"
    status = 403
    title = "Listen session does not belong to this claimant"
    persist = True  # the audit row of a token-reuse attempt is kept


class SessionClosed(ClaimsError):
    code = "session_closed"
    status = 409
    title = "Listen session no longer accepts heartbeats"


class HeartbeatRejected(ClaimsError):
    """A heartbeat that is not the next link of the chain; ``reason`` says which check failed.

    reasons: ``bad_mac`` (forged or tampered), ``replayed`` (sequence not increasing),
    ``out_of_order`` (sequence skipped ahead), ``stale_nonce`` (chain broken),
    ``session_expired``, ``session_burned``.
    """

    code = "heartbeat_rejected"
    title = "Heartbeat rejected"
    persist = True

    _STATUS = {"bad_mac": 403, "session_expired": 410, "session_burned": 403}

    def __init__(self, reason: str, detail: str | None = None, **extra: Any) -> None:
        self.reason = reason
        self.status = self._STATUS.get(reason, 409)
        super().__init__(detail or f"heartbeat rejected: {reason}", reason=reason, **extra)


# --- refusal reason codes of a claim (and of packet creation) ---------------------------------
class ClaimRefused(ClaimsError):
    """Base of every refusal with a public reason code."""

    code = "claim_refused"
    status = 403
    title = "Claim refused"
    persist = True


class NotListened(ClaimRefused):
    code = "not_listened"
    status = 403
    title = "The server did not observe a full listen"


class PacketEmpty(ClaimRefused):
    code = "packet_empty"
    status = 409
    title = "The red packet has no shares left"


class PacketExpired(ClaimRefused):
    code = "packet_expired"
    status = 410
    title = "The red packet has expired"


class AlreadyClaimed(ClaimRefused):
    code = "already_claimed"
    status = 409
    title = "This claimant already claimed the red packet"


class StepUpRequired(ClaimRefused):
    code = "step_up_required"
    status = 403
    title = "A voiceprint verification is required"


class LimitExceeded(ClaimRefused):
    code = "limit_exceeded"
    status = 403
    title = "Amount limit exceeded"


class Curfew(ClaimRefused):
    code = "curfew"
    status = 403
    title = "Not allowed for minors at this hour"


class DeviceLimit(ClaimRefused):
    code = "device_limit"
    status = 403
    title = "Too many accounts on this device or network"


REFUSALS: dict[str, type[ClaimRefused]] = {
    cls.code: cls
    for cls in (
        NotListened,
        PacketEmpty,
        PacketExpired,
        AlreadyClaimed,
        StepUpRequired,
        LimitExceeded,
        Curfew,
        DeviceLimit,
    )
}


def refusal(code: str, detail: str | None = None, **extra: Any) -> ClaimRefused:
    """The exception for a refusal reason code (used to re-raise an audited decision)."""
    return REFUSALS[code](detail, **extra)


class RelayError(ClaimsError):
    code = "relay_error"
    status = 500
    title = "Payout relay failed"

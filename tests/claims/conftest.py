"""Fixtures shared by the claims API tests."""

from __future__ import annotations

import pytest
from claimfakes import NOON_BEIJING

from claims.stepup import StaticStepUp
from core.clock import VirtualClock


@pytest.fixture
def api(client, auth_headers):  # type: ignore[no-untyped-def]
    """The test client with a claim-scoped key, a virtual clock and a fake step-up adapter."""
    client.app.state.clock = VirtualClock(NOON_BEIJING)
    client.app.state.claims_stepup = StaticStepUp()
    client.headers.update(auth_headers("claim"))
    return client

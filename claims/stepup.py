"""Step-up adapter: the claims side of the voiceprint service.

Claims depend on two questions only -- "did this user pass a voiceprint verification recently?"
and "which accounts does the cross-account voice search link to this user?" -- asked through the
small :class:`StepUp` protocol so tests and the simulator inject fakes. The default adapter
imports ``voiceprint.stepup`` lazily (the package may load heavy models); if the module is absent
it fails closed: no verification passes, and the absence is logged.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class StepUp(Protocol):
    def verification_passed(
        self, session: Session, verification_id: str, user_id: str, *, max_age_s: int = 600
    ) -> bool: ...

    def linked_accounts(self, session: Session, user_id: str) -> list[str]: ...


class VoiceprintStepUp:
    """Delegates to ``voiceprint.stepup`` (imported on first use)."""

    def __init__(self) -> None:
        self._mod: Any = None
        self._missing = False

    def _module(self) -> Any:
        if self._mod is None and not self._missing:
            try:
                self._mod = importlib.import_module("voiceprint.stepup")
            except ImportError:
                self._missing = True
                log.error("voiceprint.stepup is not available: step-up verifications cannot pass")
        return self._mod

    def verification_passed(
        self, session: Session, verification_id: str, user_id: str, *, max_age_s: int = 600
    ) -> bool:
        mod = self._module()
        if mod is None:
            return False
        return bool(mod.verification_passed(session, verification_id, user_id, max_age_s=max_age_s))

    def linked_accounts(self, session: Session, user_id: str) -> list[str]:
        mod = self._module()
        if mod is None:
            return []
        return list(mod.linked_accounts(session, user_id))


class StaticStepUp:
    """A fake for tests and the simulator: fixed passed verifications and account links."""

    def __init__(
        self,
        passed: dict[str, str] | None = None,
        links: dict[str, list[str]] | None = None,
    ) -> None:
        self.passed = dict(passed or {})  # verification_id -> user_id
        self.links = {k: list(v) for k, v in (links or {}).items()}

    def verification_passed(
        self, session: Session, verification_id: str, user_id: str, *, max_age_s: int = 600
    ) -> bool:
        return self.passed.get(verification_id) == user_id

    def linked_accounts(self, session: Session, user_id: str) -> list[str]:
        return list(self.links.get(user_id, []))

"""Fixtures for the voiceprint service tests; they live in vp_support so test modules can import its
helpers by a unique module name (``from conftest import`` would pick whichever conftest loaded last)."""

from vp_support import *  # noqa: F403  (fixtures are registered by being visible in conftest)

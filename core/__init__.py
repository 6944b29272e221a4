"""Cross-cutting pieces every package may use: settings, the error base class and the clock.

core/ owns nothing domain-specific; it must not import from the capability packages except
their pure config models (which only depend on pydantic).
"""

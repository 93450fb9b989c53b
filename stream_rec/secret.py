"""A setting whose value must never be printed: passwords and tokens.

Settings are logged, shown in tracebacks and passed around in reprs; a plain ``str`` would put
the value in all of them. ``Secret`` prints as ``***`` (an empty one as empty, so "not set"
stays visible) and hands its value out only through ``reveal()``, at the one place that needs
it. Not a dataclass on purpose: ``dataclasses.asdict`` would copy a dataclass's fields out.
"""

from __future__ import annotations

import hmac

MASK = "***"


class Revealed(str):
    """A secret's value handed to a client library: a real string, but its repr is masked.

    Libraries log their configuration (kafka-python's admin client does, at debug level) and
    such logs show the values' reprs; this keeps the password out of them.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK) if self else "''"


class Secret:
    """A password or token that prints as ``***`` and hands its value out only via ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a string, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The value itself, for the client or check that needs it; never log it."""
        return Revealed(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return MASK if self._value else ""

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so comparing settings can never be used to guess a value.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))

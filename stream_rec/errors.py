"""Exceptions and exit statuses shared across stream-rec."""

from __future__ import annotations

import shlex

# A worker exits with this status when a recommendation could not be delivered, before the
# event's offset is committed (EX_TEMPFAIL: restart it and the event is served again).
UNDELIVERED_EXIT_STATUS = 75
# A worker exits with this status when its stop took longer than the stop_timeout_s setting
# (the broker was unreachable, say); its uncommitted events are processed again after it.
STOP_TIMEOUT_EXIT_STATUS = 76
# Status of every error the user can fix (bad flag, bad setting, missing dataset), as argparse
# uses for a bad command line.
USAGE_EXIT_STATUS = 2


class UserError(Exception):
    """A problem the user can fix (missing tool, bad flag, empty dataset).

    The CLI prints it as one sentence without a traceback and exits with status 2.
    """


class SettingsError(UserError, ValueError):
    """A setting whose value cannot be used: names where it came from, the value and the need.

    ``str()`` is the whole one-line message, e.g.
    ``STREAM_REC_PARTITIONS=four: expected an integer >= 1``. It is a ``ValueError`` too, since
    that is what a bad value is to code that builds settings itself.
    """

    def __init__(self, variable: str, value: str, expected: str) -> None:
        self.variable = variable
        self.value = value
        self.expected = expected
        # Quoted as a shell would need it, so that an empty or spaced value stays visible.
        super().__init__(f"{variable}={shlex.quote(value)}: expected {expected}")

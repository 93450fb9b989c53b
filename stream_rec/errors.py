"""Exceptions and exit statuses shared across stream-rec."""

# A worker exits with this status when a recommendation could not be delivered, before the
# event's offset is committed (EX_TEMPFAIL: restart it and the event is served again).
UNDELIVERED_EXIT_STATUS = 75
# A worker exits with this status when its stop took longer than the stop_timeout_s setting
# (the broker was unreachable, say); its uncommitted events are processed again after it.
STOP_TIMEOUT_EXIT_STATUS = 76


class UserError(Exception):
    """A problem the user can fix (missing tool, bad flag, empty dataset).

    The CLI prints it as one sentence without a traceback and exits with status 2.
    """

"""Exceptions shared across stream-rec."""


class UserError(Exception):
    """A problem the user can fix (missing tool, bad flag, empty dataset).

    The CLI prints it as one sentence without a traceback and exits with status 2.
    """

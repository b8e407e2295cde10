"""Errors that reach the user as one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user (config, data file, checkpoint): the message says what is wrong and how to fix it."""

    exit_code = 2

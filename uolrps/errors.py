"""The one exception type that the command line turns into a single clear line and exit code 2."""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what to do."""

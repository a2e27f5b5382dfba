"""User-facing errors.

Anything a user can cause (bad flag, missing file, unsupported model) raises `LongwinError` with a
one-line message; the CLI prints it and exits with code 2 instead of showing a traceback.
"""


class LongwinError(Exception):
    """An error caused by user input, reported as one line (CLI exit code 2)."""

"""The one exception type a user can cause.

Everything a user can get wrong (a preset key, a missing file, a corrupt image or
snapshot) is raised as :class:`UserError` carrying a one-line message that names
the file or key. The CLI turns it into ``error: ...`` and exit status 2 in one
place (``cli.main``); nothing else prints tracebacks to users.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, reported as one ``error:`` line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split("\n"))


# A run stopped by SIGINT/SIGTERM exits with this status (the shell's 128 + SIGINT),
# and run.json records the same number, so both tell the same story.
EXIT_STOPPED = 130

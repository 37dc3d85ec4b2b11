"""The one exception type a user can cause.

Everything a user can get wrong (a preset key, a missing file, a corrupt image or
snapshot) is raised as :class:`UserError` carrying a one-line message that names
the file or key. The CLI turns it into ``error: ...`` and exit status 2 in one
place (``cli.main``); nothing else prints tracebacks to users.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, reported as one ``error:`` line.

    ``problems`` holds one message per independent problem when a check finds
    several at once (every bad value of a sweep's grid): the CLI prints one
    ``error:`` line for each, so the user fixes them all in one go.
    """

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = [" ".join(p.split("\n")) for p in problems] if problems else [str(self)]

    @classmethod
    def collected(cls, problems: list[str]) -> UserError:
        """One error for several problems (in order, duplicates dropped)."""
        unique = list(dict.fromkeys(problems))
        head = unique[0] + (f" (and {len(unique) - 1} more)" if len(unique) > 1 else "")
        return cls(head, unique)

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split("\n"))


def printable(text: str) -> str:
    """``text`` safe for a terminal: control and other non-printable characters from
    file names or file contents (an escape sequence in a name) shown escaped, as
    ``\\x1b``, ``\\n``, ``\\u202e``, never acted on."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def error_line(problem: str) -> str:
    """``error: PROBLEM`` for a terminal, with :func:`printable`'s escaping."""
    return f"error: {printable(problem)}"


# Bad input (a file or key the user can fix): one ``error:`` line and this status.
EXIT_USER = 2

# A run stopped by SIGINT/SIGTERM exits with this status (the shell's 128 + SIGINT),
# and run.json records the same number, so both tell the same story.
EXIT_STOPPED = 130

"""What this sweeper reports as one line, and the mask it puts over passwords in what it prints and writes."""

import re

NAME = "hydra-optuna-async-sweeper"  # the name its one-line errors carry
PASSWORD = re.compile(r"(//[^:/@\s]*:)[^@\s]+@")  # //user:password@ in a URL; the user may be empty
INTERRUPTED_EXIT = 130  # the shell's code for a process ended by Ctrl-C (128 + SIGINT)


class SweeperError(Exception):
    """A problem of the sweep's settings or of its study, printed as one line."""


def one_line(error: BaseException) -> str:
    """`TypeName: first line of the message`, for logs and trial reasons."""
    message = (str(getattr(error, "message", None) or error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {message}"


def mask(text: str) -> str:
    return PASSWORD.sub(r"\1***@", text)

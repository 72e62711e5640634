"""The errors a user sees as one line; everything else is a bug and keeps its traceback."""


class ColorizeError(Exception):
    """A user-facing problem (bad config, bad data, diverged run): printed as one line."""


class DivergedError(ColorizeError):
    """The loss became NaN or inf: a sweep records the trial as pruned, not as a crash."""


def one_line(error: BaseException) -> str:
    """`TypeName: first line of the message`, for logs and trial reasons."""
    return f"{type(error).__name__}: {first_line(error)}"


def first_line(error: BaseException) -> str:
    return (str(getattr(error, "message", None) or error).splitlines() or [""])[0]

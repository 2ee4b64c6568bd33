"""Errors are part of cnnbuild's interface: each one says where, what, and how to fix it.

A `Problem` is one finding about a spec (an error or a warning) with its place in the
file. `SpecError` carries every problem found in a spec, not only the first, so a user
fixes them all in one pass. `UsageError` is for the command line itself (a missing file,
a directory instead of a spec): the CLI exits 2 for it and 1 for a bad spec.
"""
from __future__ import annotations

from .records import record


@record(frozen=True)
class Where:
    """A place in a spec file. Lines and columns count from 1; `path` is the key path
    such as `layers[3].inception.branches[1][0]`."""

    file: str
    line: int
    column: int
    path: str = ""

    def at(self, path: str) -> "Where":
        return Where(self.file, self.line, self.column, path)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@record(frozen=True)
class Problem:
    where: Where
    message: str
    hint: str = ""
    layer: str = ""   # the unique name of the layer it is about ('' for the spec as a whole); the drawing reads it

    def __str__(self) -> str:
        head = f"{self.where}: "
        if self.where.path:
            head += f"{self.where.path}: "
        text = head + self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict:
        return {
            "file": self.where.file,
            "line": self.where.line,
            "column": self.where.column,
            "path": self.where.path,
            "message": self.message,
            "hint": self.hint,
        }


class SpecError(Exception):
    """A spec (or a value overriding one) is invalid. `problems` lists every error found."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class Failure(Exception):
    """A refusal or a failure that is no bug: what is wrong (`message`, naming the file or the
    value) and how to fix it (`hint`), kept apart as data; the command line prints them in one
    place (cli.py) and exits with `status`. A message may still carry its hint inline
    ("…\n  hint: …"), as older raise sites write it; `hint` is then empty."""

    status = 1

    def __init__(self, message: str = "", hint: str = ""):
        self.message, self.hint = message, hint
        super().__init__(message + (f"\n  hint: {hint}" if hint else ""))


class UsageError(Failure):
    """The command was used wrongly or a file could not be read at all (exit status 2)."""

    status = 2


class Invalid(Exception):
    """Raised inside a shape rule or a value parser; the caller adds the place.

    `message` says what is wrong, with the numbers; `hint` says how to fix it. A check
    across a kind's arguments (its `__post_init__`) names in `field` the argument at fault,
    so the error points at that argument's line and column rather than the layer's."""

    def __init__(self, message: str, hint: str = "", field: str | None = None):
        self.message = message
        self.hint = hint
        self.field = field
        super().__init__(message)


def first_line(error, limit: int = 300) -> str:
    """The first non-blank line of an exception's (or a text's) message, for one-line reports:
    Keras's and TensorFlow's messages can run to pages.

    >>> first_line(ValueError("\\n  bad shape\\n  (details)")), first_line(KeyError())
    ('bad shape', 'KeyError')
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if lines:
        return lines[0][:limit]
    return type(error).__name__ if isinstance(error, BaseException) else "unknown error"


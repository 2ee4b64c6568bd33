"""Dataclasses generated on first use, their generated code compiled once.

`dataclasses.dataclass` compiles six methods per frozen class (__init__, __repr__, __eq__,
__hash__, __setattr__, __delattr__), about 0.5 ms a class on this project's machines: for the
~90 dataclasses cnnbuild declares, half of `cnnbuild check`'s own time, most of it for classes
the check never uses (a spec uses a handful of the ~40 layer kinds). `record` declares a
dataclass whose methods are generated the first time the class is used: instantiated,
unpickled, or asked for its fields (dataclasses.fields, is_dataclass, replace and asdict all
read __dataclass_fields__). Class attributes (ClassVars, methods) are there from the start.
"""
from __future__ import annotations

import atexit
import dataclasses
import marshal
import os
import sys
from pathlib import Path

_PENDING: dict = {}    # class → the dataclass options it waits to be generated with


def record(**options):
    """`@dataclass(**options)`, generated on first use (see above).

    >>> @record(frozen=True)
    ... class Point:
    ...     x: int = 0
    >>> Point in _PENDING, Point(x=2), Point in _PENDING, [f.name for f in dataclasses.fields(Point)]
    (True, Point(x=2), False, ['x'])
    """
    def defer(cls):
        _PENDING[cls] = options
        cls.__init__ = _init_on_first_use
        cls.__setstate__ = _setstate_on_first_use
        cls.__dataclass_fields__ = _FieldsOnFirstUse()
        return cls
    return defer


def generate(cls) -> type:
    """Generate the dataclass methods of `cls` and of its bases still waiting (bases first)."""
    for klass in reversed(cls.__mro__):
        options = _PENDING.pop(klass, None)
        if options is not None:
            for placeholder in ("__init__", "__setstate__", "__dataclass_fields__"):
                delattr(klass, placeholder)
            dataclasses.exec = _exec_compiled_once     # the module's own `exec`, for this class only
            try:
                dataclasses.dataclass(klass, **options)
            finally:
                del dataclasses.exec
    return cls


# What is left of generating a dataclass is mostly compiling the text of its methods (two
# thirds of the time); the text depends only on the class's declaration, so its compiled code
# is kept, like a module's bytecode, in the __pycache__ beside this file (marshal, checked
# against the interpreter's bytecode magic) and compiled once per declaration.
_CODE: dict | None = None     # method text → compiled code, read on first use
_NEW_CODE: dict = {}          # compiled in this process, written at exit


def _exec_compiled_once(text, globals_, locals_):
    global _CODE
    if _CODE is None:
        _CODE = _read_code_cache()
    code = _CODE.get(text)
    if code is None:
        code = _CODE[text] = _NEW_CODE[text] = compile(text, "<string>", "exec")
        if len(_NEW_CODE) == 1 and not sys.dont_write_bytecode:
            atexit.register(_write_code_cache)
    exec(code, globals_, locals_)


def _code_cache_path() -> Path:
    from importlib.util import cache_from_source   # follows PYTHONPYCACHEPREFIX like a module's bytecode
    return Path(cache_from_source(__file__)).with_suffix(".dataclasses")


def _read_code_cache() -> dict:
    from importlib.util import MAGIC_NUMBER
    try:
        data = _code_cache_path().read_bytes()
        if data[:len(MAGIC_NUMBER)] == MAGIC_NUMBER:
            code = marshal.loads(data[len(MAGIC_NUMBER):])
            if isinstance(code, dict):
                return code
    except (OSError, ValueError, EOFError, TypeError):
        pass    # none yet, unreadable or from another interpreter: compiled again and rewritten
    return {}


def _write_code_cache() -> None:
    """Rewrite the cache with this process's additions (a temporary sibling, then a rename: a
    reader never sees half a file; two writers at once lose only each other's additions)."""
    from importlib.util import MAGIC_NUMBER
    path = _code_cache_path()
    try:
        code = {**_read_code_cache(), **_NEW_CODE}
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(MAGIC_NUMBER + marshal.dumps(code))
        os.replace(temporary, path)
    except OSError:
        pass    # a read-only install: compiled again next time, as Python does with its bytecode


def _init_on_first_use(self, *args, **kwargs):
    generate(type(self)).__init__(self, *args, **kwargs)


def _setstate_on_first_use(self, state):
    generate(type(self))
    self.__dict__.update(state)    # what unpickling does for a class without __setstate__


class _FieldsOnFirstUse:
    """Stands in for `__dataclass_fields__` until the class is generated."""

    def __get__(self, instance, owner):
        generate(owner)
        return owner.__dataclass_fields__

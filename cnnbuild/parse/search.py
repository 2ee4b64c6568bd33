"""A spec's `search:` section: the space `cnnbuild tune` searches, read and checked before
any trial.

    search:
      train.optimizer.learning_rate: {min: 1e-4, max: 1e-2, log: true}   # a float range, log-uniform
      train.batch_size: [32, 64, 128]                                   # choices
      layers.0.conv.filters: {min: 8, max: 64, step: 8}                 # an int range

A key is any path `--set` takes (a dotted path into the spec, or a top-level parameter's
name); a value is a list of choices, `{min, max, step}` (an int range when all three are
whole numbers, else a float range) or `{min, max, log: true}`. The families table takes the
section off the spec's tree before its family parses it (families/__init__.py), so a spec
with a search space checks, trains and draws as the spec it is, with its written values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import Problem
from .source import Node

RANGE_KEYS = ("min", "max", "step", "log")


@dataclass(frozen=True)
class Dimension:
    """One searched value: `choices`, or a range from `low` to `high` (`step`, `log`)."""

    key: str
    choices: tuple = ()
    low: Optional[float] = None
    high: Optional[float] = None
    step: Optional[float] = None
    log: bool = False
    integer: bool = False

    def describe(self) -> str:
        if self.choices:
            return f"{self.key} ∈ {{{', '.join(map(str, self.choices))}}}"
        return (f"{self.key} from {self.low:g} to {self.high:g}" + (f" by {self.step:g}" if self.step else "")
                + (" (log scale)" if self.log else ""))


def parse_search(node: Node | None, problems: list) -> tuple:
    """The section as Dimensions (in the order written); problems located at their keys."""
    if node is None or node.value is None:
        return ()
    if not node.is_map:
        problems.append(Problem(node.where, "'search' must be a mapping of spec paths to choices or ranges",
                                "e.g. search: {train.batch_size: [32, 64], train.optimizer.learning_rate: "
                                "{min: 1e-4, max: 1e-2, log: true}}"))
        return ()
    dimensions = []
    for key, value in node.value.items():
        where = node.key_where(key)
        dimension = _dimension(str(key), value, problems)
        if dimension is None:
            continue
        if not str(key).replace(".", "").replace("_", "").isalnum():
            problems.append(Problem(where, f"search key {key!r} is not a spec path",
                                    "write a dotted path as --set takes it, e.g. train.batch_size"))
            continue
        dimensions.append(dimension)
    return tuple(dimensions)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf")


def _dimension(key: str, node: Node, problems: list) -> Optional[Dimension]:
    if node.is_list:
        choices = tuple(child.plain() for child in node.value)
        if not choices:
            problems.append(Problem(node.where, f"search.{key}: an empty list of choices", "give at least two values"))
            return None
        return Dimension(key, choices=choices)
    if not node.is_map:
        problems.append(Problem(node.where, f"search.{key}: expected a list of choices or a range {{min, max}}, got "
                                f"{node.plain()!r}", f"e.g. {key}: [a, b, c] or {key}: {{min: 1, max: 10}}"))
        return None
    values = {k: child.plain() for k, child in node.value.items()}
    unknown = [k for k in values if k not in RANGE_KEYS]
    if unknown:
        problems.append(Problem(node.key_where(unknown[0]), f"search.{key}: unknown range key {unknown[0]!r}",
                                f"a range has {', '.join(RANGE_KEYS)}"))
        return None
    low, high, step, log = values.get("min"), values.get("max"), values.get("step"), values.get("log", False)
    if not (_number(low) and _number(high)) or low >= high:
        problems.append(Problem(node.where, f"search.{key}: a range needs numbers min < max, got min {low!r}, max "
                                f"{high!r}", f"e.g. {key}: {{min: 1, max: 10}}"))
        return None
    if step is not None and (not _number(step) or step <= 0):
        problems.append(Problem(node.where, f"search.{key}: step must be a positive number, got {step!r}",
                                "e.g. step: 8"))
        return None
    if not isinstance(log, bool) or (log and low <= 0):
        problems.append(Problem(node.where, f"search.{key}: log: true needs min > 0 (got min {low!r})",
                                "a log-scale range spans positive numbers, e.g. {min: 1e-4, max: 1e-1, log: true}"))
        return None
    integer = all(isinstance(v, int) for v in (low, high) + ((step,) if step is not None else ()))
    return Dimension(key, low=low, high=high, step=step, log=log, integer=integer)

"""The vocabulary of argument types every stage shares: a kind's dataclass fields are its schema.

The annotations used in kinds and sections are the small vocabulary below (Annotated ints
with bounds, `Pair`, `Padding`, Literal choices, …). The spec stage reads YAML into them
(parse/values.py), `cnnbuild schema` turns the same annotations into JSON Schema
(views/schema.py), so the checker and the schema cannot drift apart.
"""
from __future__ import annotations

from typing import Annotated

from .errors import Invalid
from .records import record


@record(frozen=True)
class Range:
    """Bounds for a number: low <= x (or low < x when open) and x <= high (or < high)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, x) -> None:
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            raise Invalid(f"must be {'>' if self.low_open else '>='} {self.low}, got {x}", f"use a number {'above' if self.low_open else 'of at least'} {self.low}")
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            raise Invalid(f"must be {'<' if self.high_open else '<='} {self.high}, got {x}", f"use a number {'below' if self.high_open else 'of at most'} {self.high}")


class PairOf:
    """An int, or an [h, w] pair, normalised to a (h, w) tuple (Keras accepts both)."""

    def __init__(self, low: int = 1):
        self.low = low


class PaddingSpec:
    """'valid', 'same', an int P, [ph, pw], or [[top, bottom], [left, right]]."""


class KernelValues:
    """A convolution's fixed kernel: one of `names` (presets), an F×F matrix, a list of them
    (matrices or names, one per filter), or a full F×F×C_in×K array; numbers nested as tuples."""

    def __init__(self, names: tuple = ()):
        self.names = names


class LayerList:
    """A list of layers (a composite's children); parsed by the spec parser."""


class BranchList:
    """A list of layer lists (inception branches)."""


PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, low_open=True)]
Fraction01 = Annotated[float, Range(0, 1, high_open=True)]
Pair = Annotated[tuple, PairOf(1)]
NonNegativePair = Annotated[tuple, PairOf(0)]
Padding = Annotated[object, PaddingSpec()]
Layers = Annotated[tuple, LayerList()]
Branches = Annotated[tuple, BranchList()]

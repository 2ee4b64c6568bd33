"""The contract between a kind and the two walkers that drive it: what `ctx` holds.

Two walkers go over the same layer graph, in the same order: the check's (check/report.py,
`_Engine`), which calls each kind's `infer(ins, ctx)` with `Tensor`s, and the builder's
(assemble/model.py, `_Builder`), which calls its `build(ins, ctx)` with Keras tensors. They
stay two: one computes shapes, counts and receptive fields and collects errors, the other
makes Keras layers and freezes them, and the loop they share is six lines. A kind may use
of `ctx` exactly what the protocol of its method lists here — nothing else of either walker —
and both walkers provide all of it (tests/test_kinds.py checks both sides).
"""
from __future__ import annotations

from typing import Protocol


class Walker(Protocol):
    """What both walkers give a kind. A "tensor" is a `Tensor` in the check, a Keras tensor
    in the builder."""

    layer: object    # the spec Layer being checked or built (its name, its `where`)

    def run(self, layers, x, label: str = ""):
        """Check or build a list of child layers from tensor `x`; returns its output
        (the check: None after an error). `label` names the list in error paths ('body')."""

    def bind(self, name: str, tensor) -> None:
        """Make `tensor` readable by `name` for the children run next (a composite's input)."""

    def lookup(self, name: str) -> tuple:
        """(layer, its input tensors, its output tensor) of a layer already walked, by unique name."""


class CheckContext(Walker, Protocol):
    """What `infer(ins, ctx)` receives from the check's walker."""

    rounding: str         # 'exact' or 'floor', from the innermost layer (or the spec) that sets it
    image: tuple          # the model's input (H, W, C), for hints that look at it
    input_names: list     # the names this layer's inputs were written with ('previous' for the one before)

    def warn(self, message: str, hint: str = "") -> None:
        """A warning at this layer (the check goes on)."""

    def error(self, message: str, hint: str = "") -> None:
        """An error at this layer, collected (raising Invalid is the other way: it ends the layer)."""


class BuildContext(Walker, Protocol):
    """What `build(ins, ctx)` receives from the builder's walker."""

    keras: object         # the keras module (kinds import no Keras themselves)
    custom: object        # cnnbuild's own Keras layers (layers/keras_layers.py)
    name: str             # the Keras name of this layer: its unique spec name
    skip_weights: bool    # inside a spec backbone with its own weights file: inner backbones load none

    def shape(self, tensor) -> tuple:
        """A Keras tensor's shape without the batch axis."""

    def model_of(self, spec):
        """Another spec's own Keras model (a spec backbone's, whose weights file loads into it)."""


def attributes(protocol) -> set:
    """The names a protocol lists (its attributes and methods, its bases' included).

    >>> sorted(attributes(Walker))
    ['bind', 'layer', 'lookup', 'run']
    """
    names = set()
    for cls in protocol.__mro__:
        if cls in (Protocol, object) or not getattr(cls, "_is_protocol", False):
            continue
        names |= set(cls.__dict__.get("__annotations__", {}))
        names |= {name for name, value in cls.__dict__.items() if callable(value) and not name.startswith("_")}
    return names

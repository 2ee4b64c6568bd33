"""Layer names: each layer gets a name unique in the model, and `inputs:` / `with:` /
a kind's references become those names.

A composite (or a block use, a repetition, a backbone's spec) prefixes its children's names
with its own, so `conv_1` inside residual `res2` is `res2_conv_1` in the model. Names are
looked up through the scopes that enclose a layer list, innermost first.
"""
from __future__ import annotations

import re

from ..errors import Problem
from ..layers.base import PARTS
from .values import did_you_mean

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class Scope:
    """Names visible in one layer list: a composite's children share its scope."""

    def __init__(self, prefix: str, parent: "Scope | None", owner: str = ""):
        self.prefix, self.parent = prefix, parent
        self.owner = owner            # the composite or block use whose layers these are ("" at the top)
        self.names: dict[str, str] = {"input": self.qualify("input")}   # local → unique; `input` is this list's input
        self.counts: dict[str, int] = {}    # kind → the last number given to an automatic name (conv_3)
        self.reserved: set[str] = set()     # names given with `name:` anywhere in its lists: automatic ones avoid them
        self.left_out: dict = {}            # local name → where the `when:` that left the layer out is

    def qualify(self, local: str) -> str:
        return f"{self.prefix}_{local}" if self.prefix else local

    def resolve(self, local: str):
        scope = self
        while scope:
            if local in scope.names:
                return scope.names[local]
            scope = scope.parent
        return None

    def left_out_at(self, local: str):
        """Where the false `when:` is that left out a layer named `local` here (None if none did)."""
        scope = self
        while scope:
            if local in scope.left_out and local not in scope.names:
                return scope.left_out[local]
            scope = scope.parent
        return None

    def visible(self) -> list:
        scope, names = self, []
        while scope:
            names += list(scope.names)
            scope = scope.parent
        return names


class Names:
    """Every name given in the model so far, and where; problems go to `problems`."""

    def __init__(self, problems: list):
        self.problems = problems
        self.used: set[str] = set()              # unique names taken
        self.where_of: dict = {}                 # unique name → where it is defined
        self.owners: dict[str, list[str]] = {}   # local name → the composites it was given in
        self.building: set[str] = set()          # composites whose children are being read: no output yet
        self.parts: dict[str, frozenset] = {}    # unique name → the extra Keras layers it builds (Kind.parts)

    def error(self, where, message, hint=""):
        self.problems.append(Problem(where, message, hint))

    def local(self, values: dict, kind: str, scope: Scope):
        """The layer's local name (its `name:`, or kind_N) and whether its `name:` is valid."""
        if "name" in values:
            local, where = values["name"].value, values["name"].where
            if not isinstance(local, str) or not NAME.match(local):
                self.error(where, f"name {local!r} must start with a letter and use letters, digits and _", "e.g. name: conv1")
            elif local == "input":
                self.error(where, "the name 'input' is reserved: it means the model's (or the enclosing "
                           "block's) input", "choose another name")
            elif local in scope.names:
                self.error(where, f"name '{local}' is used twice", "give each layer its own name")
            else:
                return local, True
        n = scope.counts.get(kind, 0)
        while True:
            n += 1
            candidate = f"{kind}_{n}"
            if candidate not in scope.names and candidate not in scope.reserved \
                    and scope.qualify(candidate) not in self.used:
                break
        scope.counts[kind] = n
        return candidate, "name" not in values

    def take(self, local: str, where, scope: Scope) -> str:
        """Give the layer its unique name in the model."""
        name = scope.qualify(local)
        scope.names[local] = name
        self.where_of.setdefault(name, where)
        if scope.owner and scope.owner not in self.owners.setdefault(local, []):
            self.owners[local].append(scope.owner)
        self.used.add(name)
        return name

    def reference(self, ref: str, where, scope: Scope, exclude=None):
        """The unique name `ref` means here, or None (with the problem reported)."""
        target = scope.resolve(ref)
        gone = scope.left_out_at(ref) if target is None else None
        if gone is not None:
            self.error(where, f"layer '{ref}' is left out: its when: (line {gone.line}, column {gone.column}) is false",
                       f"give this layer the same when:, or read another layer than '{ref}'")
            return None
        if target is None and self.owners.get(ref):   # it exists, but inside a composite this one is not in
            owners = " and ".join(self.owners[ref])
            self.error(where, f"no layer named '{ref}' here: '{ref}' is local to {owners}",
                       "names inside a composite are seen only inside it; read the composite's own output, "
                       f"or move '{ref}' out of it")
        elif target is None:
            visible = list(dict.fromkeys(n for n in scope.visible() if scope.resolve(n) not in (exclude, *self.building)))
            self.error(where, f"no layer named '{ref}' before this one",
                       did_you_mean(ref, visible) if visible else "name a layer defined earlier with 'name:'")
        elif target in self.building:
            self.error(where, f"'{ref}' is the composite this layer is inside: it has no output until its layers are done",
                       f"read 'input' for {ref}'s input, or a layer before it or inside it")
            return None
        return target

    def check_parts(self):
        """A user's name must not be one the builder gives a layer's extra Keras layers
        (conv 'c' with batchnorm also builds 'c_bn'): Keras would refuse the model. Only the
        parts that layer really builds count: `pool1_pad` beside a max_pool 'pool1' without
        explicit padding is free (Keras's own ResNet50V2 names its padding so)."""
        for name, where in self.where_of.items():
            base, _, part = name.rpartition("_")
            if part in PARTS and part in self.parts.get(base, ()):
                self.error(where, f"name '{name}' is reserved for the {part} layer that '{base}' may build in Keras",
                           f"choose another name, e.g. '{base}_{part}2' or '{part}_of_{base}'")

"""The spec language as JSON Schema (draft-07), generated from the dataclasses the checker reads.

Every layer kind in the registry, every augmentation, and the `data:` / `train:` / `budget:`
sections are frozen dataclasses whose annotations `fields.parse_fields` checks values
against; `dataclass_schema` turns one such dataclass into a schema object, and
`annotation_schema` the vocabulary of annotations (`Range`, `PairOf`, `PaddingSpec`, layer
lists, `Literal`, `Optional`, tuples, nested dataclasses). Descriptions come from the
classes' `Attributes:` docstrings, so an editor (yaml-language-server) shows the same help
as the code. A new kind or field reaches the schema without touching this module.

What JSON Schema cannot say, the checker still does: shapes, names that must exist, block
parameters. Two places are looser than the checker, on purpose: a value may be a block
parameter (`$filters`, `${filters * 4}`) wherever a number or choice goes, and in a spec
with `blocks:` any one-key mapping may be a block use (a schema cannot see which block
names the same file defines), so a misspelt kind there is left to `cnnbuild check`.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from dataclasses import MISSING
from typing import Annotated, Literal, Union

from ..fields import BranchList, KernelValues, LayerList, PairOf, PaddingSpec, Range
from ..layers import REGISTRY

DRAFT = "http://json-schema.org/draft-07/schema#"   # the draft yaml-language-server supports best
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"            # spec.NAME
VARIANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_]*$"      # named only on the command line: --variant 50 (ResNet-50)
EXPRESSION = {"$ref": "#/definitions/expression"}
ANY_VALUE = {"description": "any YAML value: a number, a word, a list ([1, 7]) or a mapping"}


def docs(cls) -> tuple[str, dict]:
    """(summary, {field: description}) from the docstrings of `cls` and its bases; an
    `Attributes:` line may describe several fields at once (`kernel, stride: as for conv`)."""
    summary, described = "", {}
    for klass in reversed(cls.__mro__):
        text = klass.__dict__.get("__doc__") or ""
        if not text or text.startswith(f"{klass.__name__}("):   # dataclass's generated signature
            continue
        head, _, attributes = inspect.cleandoc(text).partition("Attributes:")
        summary = " ".join(head.split())
        entry, names = [], []
        for line in attributes.splitlines() + [""]:
            start = re.match(r"^ {0,3}([A-Za-z_][\w ,]*):\s+(.*)$", line)
            if (start or not line.strip()) and names:
                described.update({name: " ".join(" ".join(entry).split()) for name in names})
                entry, names = [], []
            if start:
                names = [n.strip() for n in start.group(1).split(",")]
                entry = [start.group(2)]
            elif line.strip() and names:
                entry.append(line.strip())
    return summary, described


def _default(value):
    """A field's default as JSON, or MISSING when it has none to show (a dataclass instance)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        items = [_default(v) for v in value]
        return MISSING if MISSING in items else items
    return MISSING


class Unsupported(Exception):
    """An annotation the checker cannot read from YAML: a field the parser sets, not an
    argument of the spec language (`dataclass_schema` leaves it out)."""


def takes_scalar(annotation) -> bool:
    """Whether a bare int or text is read as a one-item list of `annotation` (fields.coerce)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return takes_scalar(typing.get_args(annotation)[0])
    if origin is Literal:
        return all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in typing.get_args(annotation))
    return annotation in (int, str)


class Generator:
    """Builds the schema; `definitions` collects named parts referred to with $ref."""

    def __init__(self):
        self.definitions: dict = {
            "expression": {"type": "string", "pattern": r"\$",
                           "description": "a block parameter or the repeat index: $name or ${expression}, "
                                          "e.g. $filters or ${filters * 4}"},
        }

    # --- one annotation ----------------------------------------------------------------
    def annotation_schema(self, annotation, layers: str = "layers", templated: bool = False) -> dict:
        """The schema of one annotation of the `fields` vocabulary. `layers` names the
        definition a layer list refers to; `templated` lets numbers and choices be `$name`."""
        def leaf(schema):
            return any_of([schema, EXPRESSION]) if templated else schema

        origin = typing.get_origin(annotation)
        if origin is Annotated:
            base, marker = typing.get_args(annotation)[:2]
            if isinstance(marker, Range):
                schema = dict(self.annotation_schema(base, layers))
                if marker.low is not None:
                    schema["exclusiveMinimum" if marker.low_open else "minimum"] = marker.low
                if marker.high is not None:
                    schema["exclusiveMaximum" if marker.high_open else "maximum"] = marker.high
                return leaf(schema)
            if isinstance(marker, PairOf):
                number = leaf({"type": "integer", "minimum": marker.low})
                return {"anyOf": [number, {"type": "array", "items": number, "minItems": 2, "maxItems": 2}]}
            if isinstance(marker, PaddingSpec):
                size = leaf({"type": "integer", "minimum": 0})
                pair = {"type": "array", "items": size, "minItems": 2, "maxItems": 2}
                return {"anyOf": [leaf({"enum": ["valid", "same"]}), size, pair,
                                  {"type": "array", "items": pair, "minItems": 2, "maxItems": 2}]}
            if isinstance(marker, KernelValues):
                names = {"enum": list(marker.names)}
                matrix = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
                nested = {"type": "array", "items": {"type": "array", "items": matrix}}   # F×F×C_in×K
                return {"anyOf": [names, matrix, {"type": "array", "items": {"anyOf": [names, matrix]}}, nested],
                        "description": "fixed kernel values: a preset, an F×F matrix, one per filter, or F×F×C_in×K"}
            if isinstance(marker, LayerList):
                return {"$ref": f"#/definitions/{layers}"}
            if isinstance(marker, BranchList):
                return {"type": "array", "items": {"$ref": f"#/definitions/{layers}"},
                        "description": "a list of branches, each a list of layers ([] passes the input through)"}
            raise Unsupported(marker)
        if origin is Literal:
            choices = list(typing.get_args(annotation))
            return leaf({"enum": choices})
        if origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            schemas = [self.annotation_schema(a, layers, templated) for a in options]
            if type(None) in typing.get_args(annotation):
                schemas.append({"type": "null"})
            return any_of(schemas)
        if origin is tuple:
            args = typing.get_args(annotation)
            if len(args) == 2 and args[1] is Ellipsis:
                item = self.annotation_schema(args[0], layers, templated)
                schema = {"type": "array", "items": item}
                # a lone int or text stands for a list of one (`inputs: enc1`)
                return {"anyOf": [schema, item]} if takes_scalar(args[0]) else schema
            return {"type": "array", "items": [self.annotation_schema(a, layers, templated) for a in args],
                    "additionalItems": False, "minItems": len(args)}
        if annotation is bool:
            return leaf({"type": "boolean"})
        if annotation is int:
            return leaf({"type": "integer"})
        if annotation is float:
            return leaf({"type": "number"})
        if annotation is str:
            return {"type": "string"}
        if dataclasses.is_dataclass(annotation):
            name = annotation.__name__
            if name not in self.definitions:
                self.definitions[name] = {}   # placeholder: a dataclass may refer to itself
                self.definitions[name] = self.dataclass_schema(annotation, layers=layers, templated=templated)
            return {"$ref": f"#/definitions/{name}"}
        raise Unsupported(annotation)

    # --- one dataclass ------------------------------------------------------------------
    def dataclass_schema(self, cls, extra=None, layers="layers", templated=False, shorthands=None, also=None) -> dict:
        """The schema of a dataclass read by `parse_fields`: an object of its fields (those
        the checker can read), with their defaults and descriptions, nothing else allowed.
        `extra`: more properties (a layer's common keys). `shorthands`: field → the key a
        bare scalar stands for in that field's mapping (`optimizer: sgd`). `also`: field →
        one more schema it may take (`early_stopping: true`)."""
        summary, described = docs(cls)
        hints = typing.get_type_hints(cls, include_extras=True)
        properties, required = {}, []
        for f in dataclasses.fields(cls):
            if not f.init or f.metadata.get("internal"):
                continue
            try:
                schema = self.annotation_schema(hints[f.name], layers, templated)
            except Unsupported:
                continue
            options = [schema]
            if shorthands and f.name in shorthands:
                target = typing.get_type_hints(_dataclass_in(hints[f.name]), include_extras=True)[shorthands[f.name]]
                options.append(self.annotation_schema(target, layers, templated))
            if also and f.name in also:
                options.append(also[f.name])
            schema = any_of(options)
            if f.name in described:
                schema["description"] = described[f.name]
            if f.default is not MISSING and _default(f.default) is not MISSING:
                schema["default"] = _default(f.default)
            if f.default is MISSING and f.default_factory is MISSING:
                required.append(f.name)
            properties[f.name] = schema
        properties.update(extra or {})
        out = {"type": "object", "properties": properties, "additionalProperties": False}
        if summary:
            out["description"] = summary
        if required:
            out["required"] = required
        return out

    # --- registries: layer kinds and augmentations -----------------------------------------
    def entry_schema(self, cls, extra=None, layers="layers", templated=False) -> dict:
        """What may follow `kind:` in a list item: the arguments as a mapping, nothing (when
        no argument is required), or the `main` argument alone (`dropout: 0.5`)."""
        arguments = self.dataclass_schema(cls, extra, layers, templated)
        options = [arguments]
        if not arguments.get("required"):
            options.append({"type": "null"})
        main = cls.main
        if main and main in arguments["properties"]:
            options.append({k: v for k, v in arguments["properties"][main].items() if k not in ("description", "default")})
        return {"description": arguments.get("description", cls.kind), "anyOf": options}

    def items_schema(self, registry: dict, entry) -> tuple[list, dict]:
        """A list item naming a registered kind: a bare name, or a one-key mapping. Returns
        (bare names, {name: schema after `name:`})."""
        bare = sorted(name for name, cls in registry.items() if not _required(cls))
        return bare, {name: entry(name, cls) for name, cls in sorted(registry.items())}

    def common_keys(self, merges: bool) -> dict:
        """The keys every layer may carry besides its arguments (spec.COMMON_KEYS); `with`
        only on merges."""
        names = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
        keys = {
            "name": {"type": "string", "pattern": NAME_PATTERN,
                     "description": "the layer's name, for `inputs:` / `with:` and in reports (default: kind_N)"},
            "inputs": {**names, "description": "read these named layers instead of the previous one "
                                               "(`input` is the model's, or the enclosing block's, input)"},
            "with": {**names, "description": "named layers joined to the previous layer's output "
                                             "(a U-Net skip: `concat: {with: [enc1]}`)"},
            "rounding": {"enum": ["exact", "floor"],
                         "description": "exact (a fractional output size is an error) or floor (Keras's)"},
            "trainable": {"type": "boolean", "description": "false freezes the layer's weights (default true)"},
            "when": {"anyOf": [{"type": "boolean"}, EXPRESSION],
                     "description": "false leaves the layer out (e.g. when: \"${depth > 1}\"); reading it by name is an error"},
        }
        from ..parse.parser import COMMON_KEYS
        out = {}
        for key in COMMON_KEYS:
            if key == "with" and not merges:
                continue
            self.definitions.setdefault(f"common_{key}", keys[key])
            out[key] = {"$ref": f"#/definitions/common_{key}"}
        return out

    def layers_definition(self, blocks: bool) -> str:
        """Define the layer list (and the composites that hold one) for specs without or with
        `blocks:`; returns the definition's name."""
        suffix = "_blocks" if blocks else ""
        layers = f"layers{suffix}"
        if layers in self.definitions:
            return layers
        self.definitions[layers] = {}

        def entry(name, cls):
            holds_layers = any(isinstance(m, (LayerList, BranchList))
                               for hint in typing.get_type_hints(cls, include_extras=True).values()
                               for m in _markers(hint))
            key = f"kind_{name}{suffix if holds_layers else ''}"
            if key not in self.definitions:
                self.definitions[key] = {}
                self.definitions[key] = self.entry_schema(cls, self.common_keys(cls.merges), layers, templated=True)
            return {"$ref": f"#/definitions/{key}"}

        bare, kinds = self.items_schema(REGISTRY, entry)
        options = [
            {"type": "object", "properties": kinds, "additionalProperties": False, "minProperties": 1, "maxProperties": 1},
            {"enum": bare, "description": "a kind without arguments"},
        ]
        if blocks:
            use = {"anyOf": [{"type": "null"}, {"type": "object", "properties": self.common_keys(False),
                                                "additionalProperties": ANY_VALUE}],
                   "description": "a use of a block from `blocks:`, with its parameters"}
            options += [
                {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": use,
                 "propertyNames": {"pattern": NAME_PATTERN, "not": {"enum": sorted(REGISTRY)}}},
                {"type": "string", "pattern": NAME_PATTERN, "description": "a block used without parameters"},
            ]
        self.definitions[f"layer{suffix}"] = {
            "description": "a layer: `kind: {arguments}`, `kind: value` for its main argument, or a bare kind",
            "anyOf": options}
        self.definitions[layers] = {"type": "array", "items": {"$ref": f"#/definitions/layer{suffix}"}}
        return layers

    # --- the whole spec -------------------------------------------------------------------
    def spec_schema(self) -> dict:
        from ..parse.parser import TOP_KEYS, Budget
        plain, with_blocks = self.layers_definition(False), self.layers_definition(True)
        top = {
            "name": {"type": "string", "pattern": NAME_PATTERN, "description": "the model's name (default: model)"},
            "description": {"type": "string", "description": "free text about the model"},
            "input": {"type": "array", "items": any_of([{"type": "integer", "minimum": 1}, EXPRESSION]), "minItems": 3,
                      "maxItems": 3, "description": "the image size: [height, width, channels], e.g. [32, 32, 3] "
                                                    "or [$resolution, $resolution, 3]"},
            **self.params_schema(),
            "layers": {"type": "array", "minItems": 1, "description": "the layers, first to last"},
            "blocks": self.blocks_schema(with_blocks),
            "rounding": {"enum": ["exact", "floor"], "default": "exact",
                         "description": "exact: a fractional output size is an error (the seeds' rule); "
                                        "floor: round down, as Keras does; a layer's `rounding:` overrides it"},
            "budget": self.annotation_schema(Budget),
            **self.sections_schema(),
        }
        properties = {key: top[key] for key in TOP_KEYS}
        return {
            "$schema": DRAFT,
            "title": "cnnbuild spec",
            "description": "A convolutional network in YAML: `cnnbuild check` checks it, `cnnbuild train` trains it.",
            "type": "object",
            "properties": properties,
            "required": ["input", "layers"],
            "additionalProperties": False,
            # a layer list may use blocks only when the spec defines some
            "if": {"required": ["blocks"]},
            "then": {"properties": {"layers": {"$ref": f"#/definitions/{with_blocks}"}}},
            "else": {"properties": {"layers": {"$ref": f"#/definitions/{plain}"}}},
            "definitions": self.definitions,
        }

    def params_schema(self) -> dict:
        """The top-level `params:` and `variants:` (parse/params.py)."""
        return {
            "params": {"type": "object", "propertyNames": {"pattern": NAME_PATTERN, "not": {"enum": ["index", "in"]}},
                       "additionalProperties": ANY_VALUE,
                       "description": "the spec's parameters: name → default (any value; it may use earlier "
                                      "parameters), or `required`; used anywhere as $name or ${expression}"},
            "variants": {"type": "object", "propertyNames": {"pattern": VARIANT_PATTERN},
                         "additionalProperties": {"type": "object", "additionalProperties": ANY_VALUE},
                         "description": "named sets of parameter values, chosen with --variant NAME"},
        }

    def blocks_schema(self, layers: str) -> dict:
        block = {
            "type": "object",
            "properties": {
                "description": {"type": "string"},
                "params": {"type": "object", "propertyNames": {"pattern": NAME_PATTERN, "not": {"const": "index"}},
                           "additionalProperties": ANY_VALUE,
                           "description": "parameter → default (any value; it may use earlier parameters), or "
                                          "`required`; used as $name or ${expression}"},
                "inputs": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}, "minItems": 1,
                           "maxItems": 16, "uniqueItems": True,
                           "description": "the names the block's inputs have inside it; a use lists as many in `inputs:`"},
                "layers": {"allOf": [{"$ref": f"#/definitions/{layers}"}, {"minItems": 1}]},
            },
            "required": ["layers"],
            "additionalProperties": False,
        }
        return {"type": "object", "additionalProperties": block,
                "propertyNames": {"pattern": NAME_PATTERN, "not": {"enum": sorted(REGISTRY)}},
                "description": "named groups of layers with parameters, used like kinds: `- name: {param: value}`"}

    def sections_schema(self) -> dict:
        """data:, augment:, train: from sections.py's dataclasses and the augmentation registry."""
        from ..parse import sections
        data = self.annotation_schema(sections.Data)
        out = {"data": {"anyOf": [data, {"type": "string", "description": "a source: digits, shapes, a folder, "
                                                                          "x.npz, x.tfrecord, tfds:NAME"}],
                        "description": docs(sections.Data)[0]}}

        def entry(name, cls):
            return self.entry_schema(cls)
        bare, kinds = self.items_schema(sections.AUGMENTATIONS, entry)
        item = {"anyOf": [{"type": "object", "properties": kinds, "additionalProperties": False,
                           "minProperties": 1, "maxProperties": 1}, {"enum": bare}]}
        out["augment"] = {"anyOf": [{"type": "array", "items": item}, {"type": "null"}],
                          "description": "random changes to training images, in order, e.g. [flip, {rotate: 10}]"}
        # sections.py reads `optimizer: sgd` as {name: sgd}, and early_stopping: true / false
        schema = self.dataclass_schema(sections.Train, shorthands=sections._SHORTHANDS,
                                       also={"early_stopping": {"type": "boolean"}})
        self.definitions["Train"] = schema
        out["train"] = {"anyOf": [{"$ref": "#/definitions/Train"}, {"type": "null"}],
                        "description": schema.get("description", "")}
        return out


def any_of(options: list) -> dict:
    """One schema matching any of `options`, nested anyOf lists flattened."""
    flat = []
    for option in options:
        parts = option["anyOf"] if set(option) == {"anyOf"} else [option]
        flat += [p for p in parts if p not in flat]
    return dict(flat[0]) if len(flat) == 1 else {"anyOf": flat}


def _markers(annotation):
    """The Annotated markers inside an annotation, at any depth."""
    if typing.get_origin(annotation) is Annotated:
        yield from typing.get_args(annotation)[1:]
    for arg in typing.get_args(annotation):
        if not isinstance(arg, (str, int, float, bool)) and arg is not Ellipsis:
            yield from _markers(arg)


def _required(cls) -> list:
    """The fields a mapping must give (parse_fields: no default)."""
    return [f.name for f in dataclasses.fields(cls) if f.init and f.default is MISSING and f.default_factory is MISSING]


def _dataclass_in(annotation):
    """The dataclass in `X`, `Optional[X]` or `Union[X, …]`."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    return next(a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a))


def spec_schema(families=()) -> dict:
    """The JSON Schema of a spec file: a classifier's spec, or another family's when its top
    level says so. `families`: (name, description, keys that mark it, schema(generator, spec)),
    from the families table (cnnbuild/families/), each a definition of its own."""
    generator = Generator()
    spec = generator.spec_schema()
    definitions = spec.pop("definitions")
    head = {key: spec.pop(key) for key in ("$schema", "title", "description")}
    definitions["spec"] = spec
    document, otherwise = {**head, "definitions": definitions}, None
    for name, description, keys, schema in reversed(list(families)):
        definitions[f"{name}_spec"] = schema(generator, spec)
        document["description"] += f" Or {description}."
        branch = {"if": {"anyOf": [{"required": [key]} for key in keys]},
                  "then": {"$ref": f"#/definitions/{name}_spec"},
                  "else": otherwise or {"$ref": "#/definitions/spec"}}
        otherwise = branch
    return document | (otherwise or {"$ref": "#/definitions/spec"})

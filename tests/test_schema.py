"""`cnnbuild schema` against the checker: every spec the checker accepts validates against
the schema, and the typos the checker rejects (unknown key, unknown kind, wrong type) fail
it too. The schema is generated from the registry, so these tests also cover new kinds."""
import dataclasses
import json
import typing
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from cnnbuild.cli import main
from cnnbuild.errors import SpecError
from cnnbuild.layers import REGISTRY
from cnnbuild import spec_schema
from cnnbuild.parse.source import load, parse_text
from cnnbuild.parse import parse_spec
from cnnbuild.parse.parser import COMMON_KEYS, TOP_KEYS

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = spec_schema()
VALIDATOR = Draft7Validator(SCHEMA)
GOOD_SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "tests" / "specs").glob("good/*.yaml")) \
    + sorted((ROOT / "tests" / "specs").glob("draw/*.yaml"))


def schema_errors(text: str) -> list:
    """The schema's complaints about spec text, read as cnnbuild reads YAML."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:160]}"
            for e in VALIDATOR.iter_errors(parse_text(text, "<test>").plain())]


def spec(layers: str, top: str = "") -> str:
    return f"name: t\ninput: [16, 16, 3]\n{top}layers:\n{layers}\n"


def test_the_schema_is_a_valid_draft_07_schema():
    Draft7Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", GOOD_SPECS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_spec_the_checker_accepts_validates(path):
    assert not list(VALIDATOR.iter_errors(load(path).plain())), [e.message[:200] for e in VALIDATOR.iter_errors(
        load(path).plain())][:5]


def test_the_zoo_is_there():
    assert len(list((ROOT / "specs").glob("*.yaml"))) >= 1


# Short forms and corners of the language: the checker reads each, so must the schema.
GOOD = [
    ("bare kinds and main values", spec("  - conv: 8\n  - relu\n  - max_pool: 2\n  - dropout: 0.5\n  - flatten:\n"
                                        "  - dense: 10")),
    ("pairs and explicit padding", spec("  - conv: {filters: 4, kernel: [3, 1], stride: [2, 1], "
                                        "padding: [[1, 0], [0, 1]], dilation: 1}\n  - pad: [1, 2]")),
    ("nested batchnorm", spec("  - conv: {filters: 4, kernel: 3, batchnorm: {momentum: 0.9}, activation: relu}")),
    ("names, inputs and with", spec("  - conv: {filters: 4, kernel: 1, name: a}\n  - conv: {filters: 4, kernel: 1}\n"
                                    "  - add: {with: a}\n  - concat: {inputs: [a, input], rounding: floor}\n"
                                    "  - conv: {filters: 2, kernel: 1, trainable: false}")),
    ("inception with a pass-through branch", spec("  - inception:\n      branches:\n        - [conv: {filters: 2, "
                                                  "kernel: 1}]\n        - []")),
    ("residual with a shortcut list", spec("  - residual:\n      body: [conv: {filters: 4, kernel: 3, padding: same}]\n"
                                           "      shortcut: [conv: {filters: 4, kernel: 1}]\n      activation: relu")),
    ("repeat with $index", spec("  - repeat:\n      times: 2\n      layers:\n        - conv: {filters: "
                                "\"${index * 4}\", kernel: 1}")),
    ("blocks with parameters", spec("  - down: {filters: 8}\n  - down\n  - down: {filters: 4, name: last}",
                                    "blocks:\n  down:\n    description: conv and pool\n    params: {filters: 4, act: relu}"
                                    "\n    layers:\n      - conv: {filters: $filters, kernel: 3, padding: same, "
                                    "activation: $act}\n      - max_pool: 2\n")),
    ("sections", spec("  - flatten\n  - dense: 3", "data: shapes\naugment: [flip, {rotate: 10}, {crop: 2}]\n"
                      "train: {epochs: 2, optimizer: sgd, schedule: cosine, early_stopping: true, metrics: accuracy}\n"
                      "budget: {params: 1000000}\nrounding: floor\ndescription: a test\n")),
    ("data as a mapping", spec("  - flatten\n  - dense: 3", "data: {source: shapes, samples: 100, "
                               "validation_split: 0.1}\ntrain: {optimizer: {name: adam, learning_rate: 0.01}}\n")),
]


@pytest.mark.parametrize("text", [t for _, t in GOOD], ids=[w for w, _ in GOOD])
def test_short_forms_the_checker_reads_validate(text):
    parse_spec(text)                       # the checker accepts it …
    assert schema_errors(text) == []       # … and so does the schema


# Typos: the checker rejects each, and the schema must too (so an editor underlines it).
BAD = [
    ("unknown argument", spec("  - conv: {filters: 8, kernal: 3}")),
    ("Keras's argument name", spec("  - conv: {filters: 8, kernel_size: 3}")),
    ("unknown kind", spec("  - convv: {filters: 8, kernel: 3}")),
    ("unknown bare kind", spec("  - flaten")),
    ("Keras's class name", spec("  - Conv2D: {filters: 8, kernel: 3}")),
    ("text for a number", spec("  - conv: {filters: eight, kernel: 3}")),
    ("fraction for a whole number", spec("  - conv: {filters: 8.5, kernel: 3}")),
    ("boolean for a number", spec("  - dense: {units: true}")),
    ("out of range", spec("  - dropout: 1.5")),
    ("unknown choice", spec("  - conv: {filters: 8, kernel: 3, padding: sme}")),
    ("unknown activation", spec("  - conv: {filters: 8, kernel: 3, activation: rleu}")),
    ("missing required argument", spec("  - conv: {kernel: 3}")),
    ("with on a conv", spec("  - conv: {filters: 8, kernel: 3, with: [input]}")),
    ("two keys in one layer", spec("  - conv: {filters: 8}\n    relu:")),
    ("unknown top-level key", spec("  - flatten", "layer: 3\n")),
    ("input not [h, w, c]", "name: t\ninput: [16, 16]\nlayers: [flatten]\n"),
    ("no layers", "name: t\ninput: [16, 16, 3]\n"),
    ("empty layers", "name: t\ninput: [16, 16, 3]\nlayers: []\n"),
    ("bad name", spec("  - flatten", "").replace("name: t", "name: 1t")),
    ("unknown block key", spec("  - b", "blocks:\n  b:\n    layer: [relu]\n")),
    ("block named like a kind", spec("  - conv", "blocks:\n  conv:\n    layers: [relu]\n")),
    ("unknown train key", spec("  - flatten\n  - dense: 3", "train: {epochs: 2, epoch: 3}\n")),
    ("unknown optimizer", spec("  - flatten\n  - dense: 3", "train: {optimizer: sgdd}\n")),
    ("unknown augmentation", spec("  - flatten\n  - dense: 3", "augment: [flipp]\n")),
    ("unknown data key", spec("  - flatten\n  - dense: 3", "data: {source: shapes, sample: 3}\n")),
]


@pytest.mark.parametrize("text", [t for _, t in BAD], ids=[w for w, _ in BAD])
def test_typos_the_checker_rejects_fail_the_schema(text):
    with pytest.raises(SpecError):
        parse_spec(text)
    assert schema_errors(text)


def test_every_registered_kind_is_in_the_schema_with_its_arguments():
    kinds = SCHEMA["definitions"]["layer"]["anyOf"][0]["properties"]
    assert set(kinds) == set(REGISTRY)
    for name, cls in REGISTRY.items():
        entry = SCHEMA["definitions"][kinds[name]["$ref"].split("/")[-1]]
        arguments = entry["anyOf"][0]["properties"]
        hints = typing.get_type_hints(cls)
        # a bare `tuple` (Repeat.copies) or a field marked internal (Backbone.folder, .source) is
        # filled in by the parser, not written
        readable = {f.name for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")
                    and tuple not in (hints[f.name], *typing.get_args(hints[f.name]))}
        assert readable <= set(arguments), (name, readable - set(arguments))
        assert {"name", "inputs", "rounding", "trainable"} <= set(arguments)
        assert ("with" in arguments) == cls.merges
        assert entry["description"], name


def test_common_and_top_level_keys_follow_the_parser():
    from cnnbuild.families.gan import spec as gan
    assert set(SCHEMA["definitions"]["spec"]["properties"]) == set(TOP_KEYS)
    assert set(SCHEMA["definitions"]["gan_spec"]["properties"]) == set(gan.TOP_KEYS)
    assert {k.removeprefix("common_") for k in SCHEMA["definitions"] if k.startswith("common_")} == set(COMMON_KEYS)


def test_descriptions_come_from_the_attributes_docstrings():
    conv = SCHEMA["definitions"]["kind_conv"]
    assert conv["description"].startswith("A 2-D convolution")
    arguments = conv["anyOf"][0]["properties"]
    assert arguments["filters"]["description"] == "K, the number of filters (= output channels)."
    assert arguments["padding_mode"]["description"] == "zeros, reflect or symmetric."
    assert arguments["bias"]["description"] == "as in Keras."      # one line describing several fields
    assert arguments["kernel"]["default"] == [3, 3]
    assert conv["anyOf"][-1]["anyOf"][0] == {"type": "integer", "minimum": 1}   # `conv: 8` is filters


def test_cnnbuild_schema_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(SCHEMA))

"""The family specs (specs/efficientnet.yaml, resnet.yaml, …): one file per keras.applications
family, one variant per Keras model, against keras.applications itself.

- Every variant's parameter count (all and trainable) and output shape equal its Keras model's,
  built here with weights=None (the big ones behind `slow`, which CI runs too).
- The smallest variant of each family, with Keras's weights copied in layer by layer, gives
  Keras's outputs on the same images: the same function, not just the same sizes.
- `cnnbuild scale` on EfficientNet-B0 with B2's multiply-adds as the budget lands between B1's and B3's.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

import cnnbuild
from cnnbuild.assemble import build_model
from cnnbuild.check.report import infer
from cnnbuild.cli import main
from cnnbuild.parse.overrides import setting

from conftest import SPECS

# family spec → {variant: keras.applications model}; the first variant is the family's smallest
FAMILIES = {
    "efficientnet": {"b0": "EfficientNetB0", "b1": "EfficientNetB1", "b2": "EfficientNetB2", "b3": "EfficientNetB3",
                     "b4": "EfficientNetB4", "b5": "EfficientNetB5", "b6": "EfficientNetB6", "b7": "EfficientNetB7"},
    "resnet": {"50": "ResNet50", "101": "ResNet101", "152": "ResNet152"},
    "vgg": {"16": "VGG16", "19": "VGG19"},
    "densenet": {"121": "DenseNet121", "169": "DenseNet169", "201": "DenseNet201"},
    "mobilenet_v3": {"small": "MobileNetV3Small", "large": "MobileNetV3Large"},
}
# the input the outputs are compared at: smaller than the variant's own where Keras builds it so
# (the same weights but VGG's first dense layer), a quicker test
OUTPUT_SIZES = {"efficientnet": 64, "resnet": 64, "vgg": 32, "densenet": 64, "mobilenet_v3": 64}


def _resnet_names(name):
    """Our ResNet layer → Keras's: a stage's first block is 'block1', the rest the repeat's
    copies 1, 2, … (Keras's block2, block3, …); the body's convolutions sit in the residual
    'res'; the projection shortcut is Keras's '_0_'."""
    name = re.sub(r"_blocks_(\d+)_block_", lambda m: f"_block{int(m.group(1)) + 1}_", name)
    name = re.sub(r"_res_shortcut", "_0_conv", name)
    name = re.sub(r"_res_conv(\d)", r"_\1_conv", name)
    return {"conv1": "conv1_conv", "conv1_bn": "conv1_bn"}.get(name, name.replace("_conv_bn", "_bn"))


# our layer name → its Keras model's, for families whose layers are not made in Keras's order
KERAS_NAMES = {"resnet": _resnet_names}
CASES = [(family, variant) for family, variants in FAMILIES.items() for variant in variants]


def smallest(family, variant) -> bool:
    return variant == next(iter(FAMILIES[family]))


def keras_model(family, variant, size=None):
    import keras
    make = getattr(keras.applications, FAMILIES[family][variant])
    return make(weights=None, **({"input_shape": (size, size, 3)} if size else {}))


def counts(model) -> tuple:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return model.count_params(), trainable


def report_of(family, variant, overrides=()):
    report = infer(cnnbuild.load_spec(SPECS / f"{family}.yaml", overrides, variant=variant))
    assert report.valid, [str(e) for e in report.errors]
    return report


@pytest.mark.parametrize("family, variant", [pytest.param(f, v, marks=() if smallest(f, v) else pytest.mark.slow)
                                             for f, v in CASES])
def test_variant_counts_equal_keras_applications(family, variant):
    import keras
    report = report_of(family, variant)
    theirs = keras_model(family, variant)
    assert (report.params, report.trainable_params) == counts(theirs)
    # (MobileNetV3 takes any size: Keras leaves its input's height and width open)
    assert all(n in (ours, None) for ours, n in zip(report.input, theirs.input.shape[1:]))
    assert report.output == tuple(theirs.output.shape[1:])
    keras.backend.clear_session()


def keras_leaves(model) -> list:
    """The layers holding weights, in the order the model makes them, those inside nested models
    (ConvNeXt's stem is a Sequential) included."""
    import keras
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += keras_leaves(layer)
        elif layer.weights:
            found.append(layer)
    return found


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_smallest_variant_gives_keras_outputs_with_its_weights(family):
    """Keras's weights copied into ours layer for layer, in the order both networks make their
    layers (each pair of the same Keras class and weight shapes), then both run on the same
    images: same layers, same order of operations, same padding — the same function."""
    import keras
    variant = next(iter(FAMILIES[family]))
    size = OUTPUT_SIZES[family]
    spec = cnnbuild.load_spec(SPECS / f"{family}.yaml", [setting("input", f"[{size}, {size}, 3]")], variant=variant)
    ours = build_model(spec)
    theirs = keras_model(family, variant, size)
    mine, keras_layers = keras_leaves(ours), keras_leaves(theirs)
    assert len(mine) == len(keras_layers)
    if family in KERAS_NAMES:
        by_name = {layer.name: layer for layer in keras_layers}
        keras_layers = [by_name[KERAS_NAMES[family](layer.name)] for layer in mine]
        assert len({id(layer) for layer in keras_layers}) == len(mine)
    for a, b in zip(mine, keras_layers):
        assert (type(a).__name__, [w.shape for w in a.weights]) == (type(b).__name__, [w.shape for w in b.weights]), \
            (a.name, b.name)
        a.set_weights(b.get_weights())
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    expected = np.asarray(theirs(images))
    got = np.asarray(ours(images))
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    keras.backend.clear_session()


def macs_of(variant) -> int:
    return report_of("efficientnet", variant).macs


def test_scale_b0_to_b2s_macs_lands_between_b1_and_b3(tmp_path, capsys):
    """EfficientNet's own compound rule from B0 with B2's multiply-adds (from the check of
    --variant b2) as the budget: more than B1 costs, less than B3, and the written spec checks."""
    budget = macs_of("b2")
    out = tmp_path / "scaled.yaml"
    assert main(["scale", str(SPECS / "efficientnet.yaml"), "--variant", "b0", "--max-macs", str(budget),
                 "--out", str(out)]) == 0
    written = cnnbuild.load_spec(out)
    report = infer(written)
    assert report.valid, [str(e) for e in report.errors]
    assert macs_of("b1") < report.macs <= budget < macs_of("b3")
    recorded = yaml.safe_load(out.read_text(encoding="utf-8"))["params"]
    assert recorded["depth"] > 1.0 and recorded["width"] > 1.0 and recorded["resolution"] > 224
    capsys.readouterr()

"""Random valid specs, seeded: for each, the static report (no TensorFlow) must equal the
model Keras builds from it — output shape, total and trainable parameters — and a forward
pass on random input must be finite. The generator draws kinds, sizes, strides, paddings,
batchnorm and activations, composites included, keeping track of the shape so every spec
it writes is valid."""
from __future__ import annotations

import math
import random

import pytest
import yaml

from cnnbuild.assemble import build_model
from cnnbuild.check.report import infer
from cnnbuild.parse import parse_spec

SPECS = 25
ACTIVATIONS = ["relu", "gelu", "swish", "tanh", "sigmoid", "leaky_relu", "elu", "linear"]


def _same(size: int, stride: int) -> int:
    return -(-size // stride)    # Keras's 'same': ⌈N/S⌉ (an independent statement of the rule)


def _conv(rng, h, w, c, keep_size=False):
    """A conv (or depthwise/separable conv) that fits an h×w input: (layer, h, w, channels)."""
    kind = rng.choice(["conv", "conv", "separable_conv", "depthwise_conv"])
    kernel = rng.choice([1, 3]) if min(h, w) >= 3 else 1
    stride = 1 if keep_size else rng.choice([1, 1, 2])
    args = {"kernel": kernel, "stride": stride, "padding": "same"}
    if rng.random() < 0.4:
        args["batchnorm"] = True
    if rng.random() < 0.6:
        args["activation"] = rng.choice(ACTIVATIONS)
    if kind == "depthwise_conv":
        multiplier = rng.choice([1, 2])
        args["multiplier"] = multiplier
        channels = c * multiplier
    else:
        channels = c if keep_size else rng.randint(1, 8)
        args["filters"] = channels
    return {kind: args}, _same(h, stride), _same(w, stride), channels


def _layer(rng, h, w, c):
    """One random layer for an h×w×c input: (layer, h, w, c)."""
    roll = rng.random()
    if roll < 0.35:
        return _conv(rng, h, w, c)
    if roll < 0.45 and min(h, w) >= 2:
        kind = rng.choice(["max_pool", "avg_pool"])
        return {kind: {"size": 2, "padding": "same"}}, _same(h, 2), _same(w, 2), c
    if roll < 0.5:
        return rng.choice(["batchnorm", "relu", {"dropout": 0.25}]), h, w, c
    if roll < 0.6 and max(h, w) <= 8:
        return {"upsample": 2}, 2 * h, 2 * w, c
    if roll < 0.75:   # a residual block; shortcut: auto projects when the body changes the shape
        body, bh, bw, bc = _conv(rng, h, w, c)
        activation = {"activation": "relu"} if rng.random() < 0.5 else {}
        return {"residual": {"body": [body], **activation}}, bh, bw, bc
    if roll < 0.87:   # an inception: branches that keep the size, concatenated
        branches, channels = [], 0
        for _ in range(rng.randint(1, 3)):
            branch, _, _, bc = _keep(rng, h, w, c)
            branches.append([branch])
            channels += bc
        if rng.random() < 0.5:
            branches.append([])      # the input passed through
            channels += c
        return {"inception": {"branches": branches}}, h, w, channels
    layer, _, _, _ = _conv(rng, h, w, c, keep_size=True)
    return {"repeat": {"times": rng.randint(1, 3), "layers": [layer]}}, h, w, c


def _keep(rng, h, w, c):
    """A conv that keeps h×w, any channel count."""
    kernel = rng.choice([1, 3])
    channels = rng.randint(1, 6)
    return {"conv": {"filters": channels, "kernel": kernel, "padding": "same"}}, h, w, channels


def random_spec(rng, number: int) -> tuple[dict, tuple]:
    """A valid spec as plain data, and the output shape it must have."""
    h, w, c = rng.randint(3, 16), rng.randint(3, 16), rng.randint(1, 3)
    spec = {"name": f"random_{number}", "input": [h, w, c], "layers": []}
    for _ in range(rng.randint(1, 7)):
        layer, h, w, c = _layer(rng, h, w, c)
        spec["layers"].append(layer)
    units = rng.randint(2, 10)
    spec["layers"] += [rng.choice(["flatten", "global_avg_pool"]), {"dense": {"units": units, "activation": "softmax"}}]
    return spec, (units,)


@pytest.fixture(scope="module")
def keras():
    import keras
    return keras


@pytest.mark.parametrize("number", range(SPECS))
def test_random_spec_report_equals_the_keras_model(number, keras):
    import numpy as np
    rng = random.Random(1000 + number)
    data, output = random_spec(rng, number)
    text = yaml.safe_dump(data, sort_keys=False)
    spec = parse_spec(text, f"<random {number}>")
    report = infer(spec)
    assert report.valid, f"{report.errors}\n{text}"
    model = build_model(spec, report)
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    assert tuple(report.output) == output == tuple(model.output_shape[1:]), text
    assert (report.params, report.trainable_params) == (model.count_params(), trainable), text
    images = np.random.default_rng(number).normal(size=(2, *data["input"])).astype("float32")
    predictions = np.asarray(model(images, training=False))
    assert predictions.shape == (2, *output) and np.isfinite(predictions).all(), text
    keras.backend.clear_session()

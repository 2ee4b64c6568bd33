"""The static report equals the built Keras model, for every spec in specs/ (found by glob,
so a new spec is covered by adding the file): output shape, parameter counts (total,
trainable, non-trainable), and for every row of the report — composites' children
included — a Keras layer carrying the row's unique name, with the row's output shape
and, counted over the Keras layers the row created, the row's parameters. Specs up to
a size also run a forward pass and a gradient step on a batch of 2."""
from pathlib import Path

import numpy as np
import pytest

from cnnbuild.assemble import build_model
from cnnbuild.check.report import infer
from cnnbuild import load_spec
from cnnbuild import families

SPECS = Path(__file__).resolve().parent.parent / "specs"
# a GAN's or LAPGAN's spec is several networks: their own tests build them against the check
SPEC_PATHS = sorted(path for path in SPECS.glob("*.yaml") if families.of_spec(load_spec(path)) is families.DEFAULT)
# a forward pass for every spec up to AlexNet's size (VGG16's runs in test_zoo against Keras's),
# a gradient step up to ResNet-18's (the big ones would take seconds each on a CPU)
FORWARD_MAX_PARAMS = 70_000_000
GRADIENT_MAX_PARAMS = 20_000_000
BATCH = 2


@pytest.fixture(scope="module", params=SPEC_PATHS, ids=lambda path: path.stem)
def built(request):
    """(report, model) for one spec, built once for all the tests below."""
    import keras
    spec = load_spec(request.param)
    report = infer(spec)
    assert report.valid, [str(e) for e in report.errors]
    yield report, build_model(spec, report)
    keras.backend.clear_session()


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_there_is_a_zoo():
    assert len(SPEC_PATHS) >= 11


def test_output_shape_and_params_equal_the_report(built):
    report, model = built
    assert tuple(model.output.shape[1:]) == report.output
    assert model.count_params() == report.params
    assert trainable_count(model) == report.trainable_params
    assert model.count_params() - trainable_count(model) == report.non_trainable_params


def test_every_row_is_a_keras_layer_with_the_rows_shape(built):
    """The builder names a Keras layer after each spec layer's unique name; its output
    has the row's shape. (For a conv with batchnorm or an activation the named layer is
    the convolution itself; what follows it keeps the shape.)"""
    report, model = built
    names = {layer.name for layer in model.layers}
    top = [row for row in report.rows if row.depth == 0]
    assert [row.name for row in top if row.name not in names] == []
    assert [row.name for row in report.rows if row.name not in names] == []
    for row in report.rows:
        assert tuple(model.get_layer(row.name).output.shape[1:]) == row.output, (row.path, row.name)


def _own_params(report):
    """Each row's parameters minus its children's: what the row's own Keras layers hold."""
    own = {}
    for i, row in enumerate(report.rows):
        children = 0
        for later in report.rows[i + 1:]:
            if later.depth <= row.depth:
                break
            if later.depth == row.depth + 1:
                children += later.params
        own[row.name] = row.params - children
    return own


def test_each_rows_params_equal_its_keras_layers(built):
    """A spec layer named n builds Keras layers named n or n_… (n_pad, n_bn, n_relu);
    each Keras layer belongs to the longest row name it starts with."""
    report, model = built
    own = _own_params(report)
    counted = dict.fromkeys(own, 0)
    unclaimed = []
    for layer in model.layers:
        owners = [name for name in own if layer.name == name or layer.name.startswith(name + "_")]
        if owners:
            counted[max(owners, key=len)] += layer.count_params()
        elif layer.count_params():
            unclaimed.append(layer.name)
    assert unclaimed == []
    assert {n: c for n, c in counted.items() if c != own[n]} == {}


def test_forward_pass_on_a_batch(built):
    report, model = built
    if report.params > FORWARD_MAX_PARAMS:
        pytest.skip(f"{report.name}: {report.params:,} parameters")
    images = np.random.default_rng(0).uniform(0, 1, (BATCH, *report.input)).astype("float32")
    out = np.asarray(model(images, training=False))
    assert out.shape == (BATCH, *report.output)
    assert np.isfinite(out).all()


def test_gradients_reach_every_trainable_weight(built):
    """A training step can move every weight the report counts as trainable (custom layers
    such as max_unpool and the connection-table conv included)."""
    import tensorflow as tf
    report, model = built
    if report.params > GRADIENT_MAX_PARAMS:
        pytest.skip(f"{report.name}: {report.params:,} parameters")
    images = np.random.default_rng(1).uniform(0, 1, (BATCH, *report.input)).astype("float32")
    with tf.GradientTape() as tape:
        out = model(images, training=True)
        loss = tf.reduce_sum(tf.square(out - tf.reduce_mean(out)))
    gradients = tape.gradient(loss, model.trainable_weights)
    missing = [w.path for w, g in zip(model.trainable_weights, gradients) if g is None]
    assert missing == []
    assert all(np.isfinite(np.asarray(g)).all() for g in gradients)

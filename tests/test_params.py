"""The spec language's parameters: top-level `params:` and `variants:`, `--variant` and `--set
NAME=VALUE`, `when:`, `repeat: {times: 0}`, shape expressions (`${in.channels}`),
conv_transpose's output_padding, and a problem inside a block said once.

Expected values come from outside the code under test: arithmetic written beside each case,
Keras models built by hand, Keras's own conv-transpose test cases."""
from __future__ import annotations

import json
import math
import textwrap

import pytest
import yaml

import cnnbuild
from cnnbuild.cli import main
from cnnbuild.errors import SpecError
from cnnbuild.parse.overrides import settings

from conftest import SPECS

SCALED = SPECS / "scaled_cnn.yaml"


def spec(text: str, tmp_path, name="t.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors(path, **options):
    with pytest.raises(SpecError) as caught:
        cnnbuild.load_spec(path, **options)
    return [(p.where.line, p.where.column, p.message, p.hint) for p in caught.value.problems]


# ── params and variants ─────────────────────────────────────────────────────────────────────

PARAMS = """\
    name: p
    params:
      width: 1.0
      resolution: 32
      filters: "${round(16 * width)}"
      rate: 0.5
    variants:
      small: {width: 0.5, resolution: 16}
      wide: {width: 2.5, rate: 0.25}
    input: [$resolution, $resolution, 3]
    layers:
      - conv: {filters: $filters, kernel: 3, padding: same}
      - conv: {filters: "${filters * 2}", kernel: 2, stride: 2}
      - flatten
      - dropout: $rate
      - dense: 10
    train: {epochs: "${round(10 * width)}"}
"""


def expected_params(resolution, width, rate):
    """Arithmetic by hand: conv 3×3 same (f filters), conv 2×2/2 (2f), flatten, dense 10."""
    f = math.floor(16 * width + 0.5)
    side = (resolution - 2) // 2 + 1
    return (3 * 3 * 3 * f + f) + (2 * 2 * f * 2 * f + 2 * f) + (side * side * 2 * f * 10 + 10)


@pytest.mark.parametrize("variant, sets, resolution, width, rate", [
    (None, [], 32, 1.0, 0.5),
    ("small", [], 16, 0.5, 0.5),
    ("wide", [], 32, 2.5, 0.25),
    ("small", ["width=0.75"], 16, 0.75, 0.5),        # --set wins over the variant
    (None, ["resolution=20", "rate=0.1"], 20, 1.0, 0.1),
])
def test_values_reach_input_layers_and_train(tmp_path, variant, sets, resolution, width, rate):
    loaded = cnnbuild.load_spec(spec(PARAMS, tmp_path), settings(sets), variant=variant)
    assert loaded.input == (resolution, resolution, 3)
    assert loaded.train.epochs == math.floor(10 * width + 0.5)
    assert dict(loaded.params)["filters"] == math.floor(16 * width + 0.5)   # a default using an earlier parameter
    assert loaded.variant == variant
    report = cnnbuild.check(loaded)
    assert report.valid and report.params == expected_params(resolution, width, rate)


def test_variant_and_parameter_errors_are_located_with_did_you_mean(tmp_path):
    path = spec(PARAMS.replace("rate: 0.25}", "rte: 0.25}"), tmp_path)
    found = errors(path)
    assert [(9, 22)] == [(line, column) for line, column, *_ in found]
    assert "variant 'wide' sets 'rte'" in found[0][2] and "did you mean 'rate'" in found[0][3]
    found = errors(spec(PARAMS, tmp_path, "ok.yaml"), variant="smal")
    assert "no variant 'smal'" in found[0][2] and "did you mean 'small'" in found[0][3]
    found = errors(spec(PARAMS, tmp_path, "ok.yaml"), overrides=settings(["widht=2"]))
    assert "no parameter 'widht'" in found[0][2] and "did you mean 'width'" in found[0][3]


def test_required_parameter_and_unknown_name(tmp_path):
    text = "name: r\nparams: {size: required}\ninput: [$size, $size, 1]\nlayers: [{conv: {filters: $filtres, kernel: 1}}]\n"
    found = errors(spec(text, tmp_path))
    assert found[0][:2] == (2, 10) and "'size' is required" in found[0][2]
    found = errors(spec(text, tmp_path), overrides=settings(["size=8"]))
    assert found[0][:2] == (4, 27) and "unknown parameter '$filtres'" in found[0][2]


def test_a_block_parameter_wins_over_the_spec_parameter_of_its_name(tmp_path):
    text = """\
        name: b
        params: {filters: 5, scale: 2}
        input: [8, 8, 1]
        blocks:
          unit:
            params: {filters: 3}
            layers: [{conv: {filters: "${filters * scale}", kernel: 1}}]
        layers: [unit, {unit: {filters: $filters}}]
    """
    rows = [r for r in cnnbuild.check(spec(text, tmp_path)).rows if r.kind == "conv"]
    assert [r.output[-1] for r in rows] == [3 * 2, 5 * 2]


def test_the_run_folder_spec_reads_back_with_the_same_values(tmp_path):
    """resolve_spec's tree is what spec.yaml holds: its params are the variant's, its variants gone."""
    resolved = cnnbuild.resolve_spec(spec(PARAMS, tmp_path), settings(["rate=0.3"]), variant="small")
    assert resolved.resolved["params"] == {"width": 0.5, "resolution": 16, "filters": 8, "rate": 0.3}
    assert "variants" not in resolved.resolved
    again = spec(yaml.safe_dump(resolved.resolved, sort_keys=False), tmp_path, "spec.yaml")
    reread = cnnbuild.load_spec(again)
    assert [(l.name, l.args) for l in reread.layers] == [(l.name, l.args) for l in resolved.layers]
    assert reread.input == resolved.input and reread.train == resolved.train
    assert cnnbuild.check(reread).params == cnnbuild.check(resolved).params


def test_check_json_reports_the_values_and_the_variant(tmp_path, capsys):
    path = spec(PARAMS, tmp_path)
    assert main(["check", str(path), "--json", "--variant", "wide", "--set", "resolution=24"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["variant"] == "wide"
    assert document["spec_params"] == {"width": 2.5, "resolution": 24, "filters": 40, "rate": 0.25}
    assert document["params"] == expected_params(24, 2.5, 0.25)


@pytest.mark.parametrize("command", ["check", "summary", "draw"])
def test_variant_is_taken_by_the_commands_that_read_a_spec(tmp_path, capsys, command):
    extra = ["--out", str(tmp_path / "d.svg")] if command == "draw" else []
    if command == "summary":
        pytest.importorskip("tensorflow")
    assert main([command, str(SCALED), "--variant", "small", *extra]) == 0
    assert main([command, str(SCALED), "--variant", "tiny", *extra]) == 1
    assert "no variant 'tiny'" in capsys.readouterr().err


# ── every variant of the example spec against Keras built by hand ───────────────────────────

def hand_built(depth, width, resolution, dropout, use_se):
    """specs/scaled_cnn.yaml written in Keras directly."""
    import keras
    from keras import layers

    def divisible(v, d=8):   # keras.applications' _make_divisible
        rounded = max(d, int(v + d / 2) // d * d)
        return rounded + d if rounded < 0.9 * v else rounded

    x = inputs = keras.Input((resolution, resolution, 1))
    for base in (16, 32):
        filters = divisible(base * width)
        for _ in range(math.floor(depth * 2 + 0.5)):
            x = layers.Conv2D(filters, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        if use_se:
            gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
            gate = layers.Conv2D(max(1, filters // 4), 1, activation="relu")(gate)
            gate = layers.Conv2D(filters, 1, activation="sigmoid")(gate)
            x = layers.Multiply()([x, gate])
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


@pytest.mark.parametrize("variant", ["small", "medium", "large"])
def test_every_variant_equals_keras_built_by_hand(variant):
    pytest.importorskip("tensorflow")
    document = yaml.safe_load(SCALED.read_text(encoding="utf-8"))
    values = document["params"] | document["variants"][variant]
    loaded = cnnbuild.load_spec(SCALED, variant=variant)
    reference = hand_built(**values)
    report = cnnbuild.check(loaded)
    model = cnnbuild.build_model(loaded, report)
    assert report.params == reference.count_params() == model.count_params()
    assert tuple(model.output.shape[1:]) == tuple(reference.output.shape[1:]) == report.output
    assert sum(int(w.shape.num_elements()) for w in model.non_trainable_weights) == \
        sum(int(w.shape.num_elements()) for w in reference.non_trainable_weights)


# ── when: and times: 0 ──────────────────────────────────────────────────────────────────────

OPTIONAL = """\
    name: o
    params: {use_gate: false, depth: 0}
    input: [8, 8, 3]
    layers:
      - conv: {filters: 4, kernel: 3, name: c1}
      - conv: {filters: 4, kernel: 1, name: gate, when: $use_gate}
      - repeat: {times: $depth, layers: [{conv: {filters: 4, kernel: 1}}]}
      - conv: {filters: 2, kernel: 1, when: "${depth >= 2}"}
"""


@pytest.mark.parametrize("sets, convs", [([], [3 * 3 * 3 * 4 + 4]),
                                          (["use_gate=true"], [3 * 3 * 3 * 4 + 4, 4 * 4 + 4]),
                                          (["depth=2"], [3 * 3 * 3 * 4 + 4, 4 * 4 + 4, 4 * 4 + 4, 4 * 2 + 2])])
def test_when_and_times_zero(tmp_path, sets, convs):
    report = cnnbuild.check(cnnbuild.load_spec(spec(OPTIONAL, tmp_path), settings(sets)))
    assert report.valid and [r.params for r in report.rows if r.kind == "conv"] == convs
    assert report.params == sum(convs)
    repeat = next(r for r in report.rows if r.kind == "repeat")
    assert repeat.inputs[0] == repeat.output == (6, 6, 4)


def test_times_zero_builds_as_the_identity(tmp_path):
    pytest.importorskip("tensorflow")
    loaded = cnnbuild.load_spec(spec(OPTIONAL, tmp_path))
    model = cnnbuild.build_model(loaded)
    assert model.count_params() == 3 * 3 * 3 * 4 + 4 and tuple(model.output.shape[1:]) == (6, 6, 4)


def test_reading_a_left_out_layer_says_so(tmp_path):
    found = errors(spec(textwrap.dedent(OPTIONAL) + "  - add: {with: [gate]}\n", tmp_path))
    assert [(f[0], f[1]) for f in found] == [(9, 17)]
    assert "layer 'gate' is left out: its when: (line 6, column 53) is false" in found[0][2]


# ── shape expressions ───────────────────────────────────────────────────────────────────────

SHAPED = """\
    name: s
    input: [16, 12, 3]
    blocks:
      transition:
        layers:
          - batchnorm
          - conv: {filters: "${in.channels // 2}", kernel: 1}
          - avg_pool: 2
    layers:
      - conv: {filters: 24, kernel: 3, padding: same}
      - transition
      - conv: {filters: "${in.channels * 2}", kernel: ["${in.height // 4}", "${in.width // 3}"]}
      - flatten
      - dense: "${in.channels // 10}"
"""


def test_shape_expressions_read_the_incoming_tensor(tmp_path):
    report = cnnbuild.check(spec(SHAPED, tmp_path))
    convs = [r for r in report.rows if r.kind == "conv"]
    # 24 → transition halves it: 12 filters on 8×6; then 24 filters of (8 // 4)×(6 // 3) = 2×2 → 7×5×24
    assert [r.output for r in convs] == [(16, 12, 24), (16, 12, 12), (7, 5, 24)]
    dense = next(r for r in report.rows if r.kind == "dense")
    assert dense.output == ((7 * 5 * 24) // 10,)


def test_shape_expressions_build_the_same_model(tmp_path):
    pytest.importorskip("tensorflow")
    loaded = cnnbuild.load_spec(spec(SHAPED, tmp_path))
    report = cnnbuild.check(loaded)
    model = cnnbuild.build_model(loaded, report)
    assert model.count_params() == report.params and tuple(model.output.shape[1:]) == report.output
    assert model.get_layer("conv_2").kernel.shape == (2, 2, 12, 24)


def test_shape_expression_errors_are_located(tmp_path):
    text = "name: e\ninput: [8, 8, 3]\nlayers:\n  - conv: {filters: \"${in.channels - 100}\", kernel: 1}\n"
    problem = cnnbuild.check(spec(text, tmp_path)).errors[0]
    assert (problem.where.line, problem.where.column) == (4, 5)
    assert "in.channels = 3" in problem.message and "t.yaml:4:21" in problem.message
    found = errors(spec(text.replace("kernel", "kernal"), tmp_path, "k.yaml"))
    assert [(f[0], f[1]) for f in found] == [(4, 45)] and "unknown argument 'kernal'" in found[0][2]


# ── conv_transpose output_padding: Keras's own test cases ───────────────────────────────────
# keras/src/layers/convolutional/conv_transpose_test.py, test_conv2d_transpose_basic and the
# correctness tests (filters, kernel, strides, padding, output_padding, dilation, input HWC, output HWC)
KERAS_CASES = [
    (5, 2, 2, "valid", None, 1, (8, 8, 4), (16, 16, 5)),
    (6, 2, 3, "same", 2, 1, (8, 8, 4), (23, 23, 6)),
    (6, (2, 3), (2, 1), "valid", None, 1, (8, 8, 4), (16, 10, 6)),       # the channels_first case, made channels_last
    (2, 7, 16, "valid", None, 1, (14, 14, 2), (224, 224, 2)),
    (6, 7, 16, "same", 2, 1, (3, 3, 2), None),                          # correctness test: output from Keras
    (4, 3, 2, "valid", 1, 1, (5, 6, 3), None),
    (4, 3, 2, "same", 1, 1, (7, 7, 3), None),                           # 7 → 14, the size a stride-2 conv came from
    (4, 3, (2, 3), "same", (0, 2), 1, (5, 4, 3), None),
]


@pytest.mark.parametrize("filters, kernel, stride, padding, output_padding, dilation, shape, output", KERAS_CASES)
def test_conv_transpose_output_padding_as_keras(tmp_path, filters, kernel, stride, padding, output_padding,
                                                dilation, shape, output):
    keras = pytest.importorskip("keras")
    arguments = {"filters": filters, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
    if output_padding is not None:
        arguments["output_padding"] = output_padding
    text = f"name: t\ninput: {list(shape)}\nlayers:\n  - conv_transpose: {json.dumps(arguments)}\n"
    report = cnnbuild.check(spec(text, tmp_path))
    layer = keras.layers.Conv2DTranspose(filters, kernel, strides=stride, padding=padding,
                                         output_padding=output_padding, dilation_rate=dilation)
    built = layer(keras.Input(shape))
    assert report.valid and report.output == tuple(built.shape[1:])
    if output is not None:
        assert report.output == output
    assert report.params == layer.count_params()


def test_output_padding_must_be_less_than_the_stride(tmp_path):
    text = "name: t\ninput: [8, 8, 3]\nlayers:\n  - conv_transpose: {filters: 2, stride: 2, output_padding: 2}\n"
    found = errors(spec(text, tmp_path))
    assert found[0][:2] == (4, 61) and "must be less than the stride" in found[0][2]


# ── one problem inside a block, said once ───────────────────────────────────────────────────

def test_a_problem_in_a_block_is_said_once_with_its_uses(tmp_path):
    text = """\
        name: d
        input: [8, 8, 3]
        blocks:
          unit:
            params: {filters: 4}
            layers: [{conv: {filters: $filtres, kernel: 3, padding: same}}]
        layers: [unit, {unit: {filters: 8}}, unit, {unit: {name: last}}]
    """
    found = errors(spec(text, tmp_path))
    assert len(found) == 1 and found[0][:2] == (6, 31)
    assert "in 4 uses: 'unit_1' (line 7), 'unit_2' (line 7), 'unit_3' (line 7), 'last' (line 7)" in found[0][2]


def test_a_gan_spec_takes_params_and_variants_too(tmp_path):
    from conftest import ROOT
    text = (ROOT / "tests" / "specs" / "gan" / "good" / "cgan_digits.yaml").read_text(encoding="utf-8")
    text = text.replace("gan:\n  noise: 32", "params: {noise: 32, width: 32}\nvariants: {wide: {width: 64, noise: 16}}\n"
                        "gan:\n  noise: $noise").replace("conv_transpose: {filters: 32,", "conv_transpose: {filters: $width,")
    assert "$width" in text and "$noise" in text
    loaded = cnnbuild.load_spec(spec(text, tmp_path), variant="wide")
    assert loaded.gan.noise == 16 and dict(loaded.params) == {"noise": 16, "width": 64}
    transpose = next(layer for layer in loaded.generator.layers if layer.kind == "conv_transpose")
    assert transpose.args.filters == 64 and loaded.generator.input == (16 + 10,)

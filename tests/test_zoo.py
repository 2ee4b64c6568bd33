"""The zoo (specs/) against references from outside cnnbuild.

- vgg16, resnet50, mobilenet_v2, convnext_tiny, efficientnet_b0, mobilenet_v3_small, inception_v3:
  keras.applications itself, built in the test: parameter counts, the output shape of
  every stage, and (with the reference's weights copied in) the same outputs for the same
  images, so the spec builds the very same function.
- alexnet, lenet5, lenet5_original, googlenet, resnet18, neon_example: counted by hand
  here from the papers' layer tables with the seeds' rule K·(F·F·C_in/groups + 1),
  never by calling cnnbuild's own rules.
"""
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cnnbuild.assemble import build_model
from cnnbuild.check.report import infer
from cnnbuild import load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def report_of(name):
    report = infer(load_spec(SPECS / f"{name}.yaml"))
    assert report.valid, [str(e) for e in report.errors]
    return report


def rows_by_name(report):
    return {row.name: row for row in report.rows}


def conv_params(filters, kernel, channels, groups=1, bias=True):
    """The seeds' K · (F·F·C_in + 1), each filter reading C_in / groups maps."""
    return filters * (kernel * kernel * channels // groups + (1 if bias else 0))


def dense_params(fan_in, units):
    return fan_in * units + units


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# --- keras.applications ----------------------------------------------------------------

def _vgg16():
    import keras
    return keras.applications.VGG16(weights=None)


def _resnet50():
    import keras
    return keras.applications.ResNet50(weights=None)


def _mobilenet_v2():
    import keras
    return keras.applications.MobileNetV2(weights=None, alpha=1.0)


def _convnext_tiny(size):
    import keras
    return keras.applications.ConvNeXtTiny(weights=None, input_shape=(size, size, 3))


def _convnext_tiny_stages(report):
    stages = {"prestem_normalization": "convnext_tiny_prestem_normalization", "stem_layernorm": "convnext_tiny_stem",
              "head_gap": "convnext_tiny_head_gap", "head_dense": "convnext_tiny_head_dense"}
    stages.update({f"downsampling_block_{i}": f"convnext_tiny_downsampling_block_{i}" for i in range(3)})
    return stages


def _convnext_tiny_weights(name):
    """Our layer name → Keras ConvNeXtTiny's: Keras prefixes the model's name; a block's layers
    sit inside our residual 'res'; stage 2's nine blocks are our repeat's copies 1 … 9."""
    name = re.sub(r"^stage_2_(\d+)_block_res_", lambda m: f"stage_2_block_{int(m.group(1)) - 1}_", name)
    name = re.sub(r"^(stage_\d_block_\d)_res_", r"\1_", name)
    name = re.sub(r"^downsampling_block_(\d)_(layernorm|conv)$", r"downsampling_\2_\1", name)
    return f"convnext_tiny_{name}"


def _efficientnet_b0(size):
    import keras
    return keras.applications.EfficientNetB0(weights=None, input_shape=(size, size, 3))


def _efficientnet_b0_stages(report):
    stages = {"stem_conv": "stem_activation", "top_conv": "top_activation", "avg_pool": "avg_pool",
              "predictions": "predictions"}
    for row in report.rows:
        if re.fullmatch(r"block\d[a-d]", row.name):   # Keras: the Add when the block is residual
            stages[row.name] = f"{row.name}_add" if row.kind == "mbconv_residual" else f"{row.name}_project_bn"
    return stages


def _efficientnet_b0_weights(name, theirs):
    """Our layer name → Keras EfficientNetB0's: a residual block's layers sit inside its
    residual 'res' and the inner use 'm'; the squeeze-and-excitation and projection inside
    the use 'se'; batchnorms are named after the step, not the convolution. Keras names
    its input normalisation automatically (normalization, normalization_1, … in a session)."""
    if name == "normalization":
        return next(n for n, layer in theirs.items() if type(layer).__name__ == "Normalization")
    name = re.sub(r"^(block\d[a-d])_res_m_", r"\1_", name)
    name = re.sub(r"_se_(se_|project_conv)", r"_\1", name)
    for ours, keras_name in ((r"_expand_conv_bn$", "_expand_bn"), (r"_dwconv_bn$", "_bn"), (r"_project_conv_bn$", "_project_bn"),
                             (r"^stem_conv_bn$", "stem_bn"), (r"^top_conv_bn$", "top_bn")):
        name = re.sub(ours, keras_name, name)
    return name


def _mobilenet_v3_small(size):
    import keras
    return keras.applications.MobileNetV3Small(weights=None, input_shape=(size, size, 3))


def _mobilenet_v3_small_stages(report):
    stages = {"conv_1": "conv_1_bn", "logits": "logits", "predictions": "predictions",
              "expanded_conv_project": "expanded_conv_project_bn"}
    for row in report.rows:
        if re.fullmatch(r"expanded_conv_\d+", row.name):   # Keras: the Add when the block is residual
            stages[row.name] = f"{row.name}_add" if row.kind.endswith("residual") else f"{row.name}_project_bn"
    return stages


def _inception_v3(size):
    import keras
    return keras.applications.InceptionV3(weights=None, input_shape=(size, size, 3))


def _inception_v3_stages(report):
    stages = {"avg_pool": "avg_pool", "predictions": "predictions"}   # Keras names the stem automatically
    stages.update({f"mixed{i}": f"mixed{i}" for i in range(11)})
    return stages


def _creation_order(name):
    """Keras's automatic names count up as layers are made: conv2d, conv2d_1, conv2d_2, …"""
    number = re.search(r"_(\d+)$", name)
    return int(number.group(1)) if number else 0


def _inception_v3_weights(name, theirs, report):
    """Keras InceptionV3 names its convolutions and batchnorms automatically (conv2d_N,
    batch_normalization_N), so they are matched in the order both models make them: the
    spec's convolutions in order (an inception's branches left to right), Keras's by number."""
    ours = [row.name for row in report.rows if row.kind == "conv"]

    def made(cls):
        return sorted((n for n, layer in theirs.items() if type(layer).__name__ == cls), key=_creation_order)
    if name.endswith("_bn") and name[:-3] in ours:
        return made("BatchNormalization")[ours.index(name[:-3])]
    if name in ours:
        return made("Conv2D")[ours.index(name)]
    return name


def _vgg16_stages(report):
    """The spec uses Keras's layer names."""
    return {row.name: row.name for row in report.rows if row.depth == 0}


def _resnet50_stages(report):
    stages = {"conv1": "conv1_relu", "pool1": "pool1_pool", "avg_pool": "avg_pool", "predictions": "predictions"}
    for row in report.rows:
        if re.fullmatch(r"conv\d_block\d", row.name):
            stages[row.name] = f"{row.name}_out"    # Keras: the ReLU after the block's sum
    return stages


def _mobilenet_v2_stages(report):
    stages = {"Conv1": "Conv1_relu", "expanded_conv_project": "expanded_conv_project_BN", "Conv_1": "out_relu",
              "predictions": "predictions"}
    for row in report.rows:
        if re.fullmatch(r"block_\d+", row.name):   # Keras: the Add when the block is residual
            stages[row.name] = f"{row.name}_add" if row.kind == "inverted_residual" else f"{row.name}_project_BN"
    return stages


def _resnet50_weights(name):
    """Our layer name → Keras ResNet50's. The body's convolutions are conv1..3 inside the
    block's residual 'res'; the projection shortcut is Keras's '_0_'."""
    name = re.sub(r"^(conv\d_block\d)_res_shortcut", r"\1_0", name)
    name = re.sub(r"^(conv\d_block\d)_res_conv(\d)", r"\1_\2", name)
    if name == "conv1":
        return "conv1_conv"
    if re.fullmatch(r"conv\d_block\d_\d", name):
        return f"{name}_conv"
    return name


def _mobilenet_v2_weights(name):
    """Our layer name → Keras MobileNetV2's: batchnorms are '<conv>_BN' there (the first
    and the last are 'bn_Conv1' and 'Conv_1_bn'); a residual block's layers sit inside
    its 'res' residual and the inner 'inverted' use."""
    if name in ("Conv1_bn", "Conv_1_bn"):
        return {"Conv1_bn": "bn_Conv1", "Conv_1_bn": "Conv_1_bn"}[name]
    name = re.sub(r"^(block_\d+)_res_inverted_1_", r"\1_", name)
    return re.sub(r"_bn$", "_BN", name)


@dataclass
class Reference:
    make: object        # builds the keras.applications model (at `size`, when given)
    stages: object      # report → {our top-level name: Keras layer name}
    weights: object     # (our layer name, Keras's layers by name, our report) → Keras layer name
    features: tuple     # (our layer, Keras layer) pairs whose outputs are compared numerically
    size: int | None = None   # a smaller input than the spec's, where Keras takes one: the same weights, a quicker test


REFERENCES = {
    "vgg16": Reference(_vgg16, _vgg16_stages, lambda name, theirs, report: name,
                       (("block1_pool", "block1_pool"), ("block5_pool", "block5_pool"))),
    "resnet50": Reference(_resnet50, _resnet50_stages, lambda name, theirs, report: _resnet50_weights(name),
                          (("pool1", "pool1_pool"), ("conv2_block1", "conv2_block1_out"), ("conv5_block3", "conv5_block3_out"))),
    "mobilenet_v2": Reference(_mobilenet_v2, _mobilenet_v2_stages, lambda name, theirs, report: _mobilenet_v2_weights(name),
                              (("block_1", "block_1_project_BN"), ("block_2", "block_2_add"), ("block_16", "block_16_project_BN"))),
    "convnext_tiny": Reference(_convnext_tiny, _convnext_tiny_stages, lambda name, theirs, report: _convnext_tiny_weights(name),
                               (("stem_layernorm", "convnext_tiny_stem"), ("downsampling_block_1", "convnext_tiny_downsampling_block_1")),
                               size=64),
    "efficientnet_b0": Reference(_efficientnet_b0, _efficientnet_b0_stages, lambda name, theirs, report: _efficientnet_b0_weights(name, theirs),
                                 (("block2b", "block2b_add"), ("block6d", "block6d_add")), size=64),
    "mobilenet_v3_small": Reference(_mobilenet_v3_small, _mobilenet_v3_small_stages, lambda name, theirs, report: name.replace("_res_m_", "_"),
                                    (("expanded_conv_2", "expanded_conv_2_add"), ("expanded_conv_10", "expanded_conv_10_add")),
                                    size=64),
    "inception_v3": Reference(_inception_v3, _inception_v3_stages, _inception_v3_weights,
                              (("mixed2", "mixed2"), ("mixed7", "mixed7")), size=75),
}


def keras_leaves(model) -> dict:
    """Every Keras layer of `model` by name, those inside nested models (ConvNeXt's stem is a
    Sequential) included."""
    import keras
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(keras_leaves(layer))
        else:
            found[layer.name] = layer
    return found


@dataclass
class Pair:
    name: str
    report: object
    ours: object
    keras: object
    reference: Reference


@pytest.fixture(scope="module", params=sorted(REFERENCES))
def pair(request):
    """Each big model is built once per session, ours and Keras's side by side."""
    import keras
    from cnnbuild.parse.overrides import setting
    name = request.param
    reference = REFERENCES[name]
    size = reference.size
    spec = load_spec(SPECS / f"{name}.yaml", [setting("input", f"[{size}, {size}, 3]")] if size else ())
    report = infer(spec)
    assert report.valid, [str(e) for e in report.errors]
    yield Pair(name, report, build_model(spec, report), reference.make(size) if size else reference.make(), reference)
    keras.backend.clear_session()


def test_params_equal_keras_applications(pair):
    expected_total, expected_trainable = pair.keras.count_params(), trainable_count(pair.keras)
    assert (pair.report.params, pair.report.trainable_params) == (expected_total, expected_trainable)
    assert (pair.ours.count_params(), trainable_count(pair.ours)) == (expected_total, expected_trainable)
    assert pair.report.output == tuple(pair.keras.output.shape[1:])


def test_stage_shapes_equal_keras_applications(pair):
    stages = pair.reference.stages(pair.report)
    assert len(stages) >= 5
    rows = rows_by_name(pair.report)
    for ours, theirs in stages.items():
        assert rows[ours].output == tuple(pair.keras.get_layer(theirs).output.shape[1:]), (ours, theirs)


def test_same_outputs_as_keras_applications_with_its_weights(pair):
    """Copy every Keras weight into our model by layer, then run both on the same images:
    same layers, same order of operations, same padding — the same function."""
    import keras
    copied = set()
    theirs_by_name = keras_leaves(pair.keras)
    for layer in pair.ours.layers:
        if not layer.weights:
            continue
        source = theirs_by_name[pair.reference.weights(layer.name, theirs_by_name, pair.report)]
        layer.set_weights(source.get_weights())
        copied.add(source.name)
    assert copied == {name for name, layer in theirs_by_name.items() if layer.weights}
    images = np.random.default_rng(0).uniform(0, 1, (2, *pair.report.input)).astype("float32")
    # (with random weights MobileNetV2's activations shrink block by block; the tolerances are relative)
    ours = keras.Model(pair.ours.input, [pair.ours.get_layer(a).output for a, _ in pair.reference.features] + [pair.ours.output])
    theirs = keras.Model(pair.keras.input, [pair.keras.get_layer(b).output for _, b in pair.reference.features]
                         + [pair.keras.output])
    for (ours_name, _), got, expected in zip([*pair.reference.features, ("output", None)], ours(images), theirs(images)):
        expected = np.asarray(expected)
        assert np.abs(expected).max() > 0, ours_name
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max(), err_msg=ours_name)


# --- hand counts from the papers --------------------------------------------------------

def test_alexnet_is_60_965_224_from_its_layer_table():
    # Krizhevsky et al. 2012: (filters, kernel, input maps, groups); groups 2 = the two GPU towers
    convs = [(96, 11, 3, 1), (256, 5, 96, 2), (384, 3, 256, 1), (384, 3, 384, 2), (256, 3, 384, 2)]
    dense = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    expected = sum(conv_params(*c) for c in convs) + sum(dense_params(*d) for d in dense)
    assert expected == 60_965_224
    report = report_of("alexnet")
    assert report.params == report.trainable_params == expected
    sizes = [row.output[0] for row in report.rows if row.kind in ("conv", "max_pool")]
    assert sizes == [55, 27, 27, 13, 13, 13, 13, 6]    # the paper's 55, 27, 13 and 6


def test_lenet5_is_61_706():
    expected = (conv_params(6, 5, 1) + conv_params(16, 5, 6) + conv_params(120, 5, 16)
                + dense_params(120, 84) + dense_params(84, 10))
    assert expected == 61_706
    assert report_of("lenet5").params == expected


# LeCun et al. 1998, Table 1: rows are S2's maps, columns C3's; X = connected.
LENET_TABLE = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


def test_lenet5_original_c3_has_1_516_params_from_the_papers_table():
    table = LENET_TABLE.split()
    connections = sum(row.count("X") for row in table)
    expected = 5 * 5 * connections + 16
    assert (connections, expected) == (60, 1_516)
    spec = load_spec(SPECS / "lenet5_original.yaml")
    c3 = next(layer for layer in spec.layers if layer.name == "c3")
    columns = [tuple(i for i, row in enumerate(table) if row[j] == "X") for j in range(16)]
    assert c3.args.connections == tuple(columns)
    rows = rows_by_name(infer(spec))
    assert rows["c3"].params == expected
    assert (rows["s2"].params, rows["s4"].params) == (12, 32)   # a coefficient and a bias per map


def test_lenet5_original_c3_builds_with_1_516_keras_weights():
    model = build_model(load_spec(SPECS / "lenet5_original.yaml"))
    assert model.get_layer("c3").count_params() == 1_516


# Szegedy et al. 2014, Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj
GOOGLENET_MODULES = {
    "inception_3a": (64, 96, 128, 16, 32, 32),
    "inception_3b": (128, 128, 192, 32, 96, 64),
    "inception_4a": (192, 96, 208, 16, 48, 64),
    "inception_4b": (160, 112, 224, 24, 64, 64),
    "inception_4c": (128, 128, 256, 24, 64, 64),
    "inception_4d": (112, 144, 288, 32, 64, 64),
    "inception_4e": (256, 160, 320, 32, 128, 128),
    "inception_5a": (256, 160, 320, 32, 128, 128),
    "inception_5b": (384, 192, 384, 48, 128, 128),
}
# the table's "output size" column
GOOGLENET_SIZES = {"inception_3a": (28, 28, 256), "inception_3b": (28, 28, 480), "inception_4a": (14, 14, 512),
                   "inception_4b": (14, 14, 512), "inception_4c": (14, 14, 512), "inception_4d": (14, 14, 528),
                   "inception_4e": (14, 14, 832), "inception_5a": (7, 7, 832), "inception_5b": (7, 7, 1024)}


def test_googlenet_params_from_the_papers_filter_counts():
    channels = 192                                   # after the stem
    expected = conv_params(64, 7, 3) + conv_params(64, 1, 64) + conv_params(192, 3, 64)
    modules = {}
    for name, (one, reduce3, three, reduce5, five, pool_proj) in GOOGLENET_MODULES.items():
        modules[name] = (conv_params(one, 1, channels) + conv_params(reduce3, 1, channels) + conv_params(three, 3, reduce3)
                         + conv_params(reduce5, 1, channels) + conv_params(five, 5, reduce5)
                         + conv_params(pool_proj, 1, channels))
        channels = one + three + five + pool_proj
    expected += sum(modules.values()) + dense_params(1024, 1000)
    assert expected == 6_998_552
    report = report_of("googlenet")
    assert report.params == expected
    rows = rows_by_name(report)
    for name, params in modules.items():
        assert (rows[name].params, rows[name].output) == (params, GOOGLENET_SIZES[name]), name


def test_resnet18_trainable_params_equal_torchvisions_11_689_512():
    """torchvision counts weights and batchnorm gamma/beta; Keras also keeps the moving
    mean and variance, as non-trainable weights: 2 per batchnorm channel."""
    def bn(channels):
        return 2 * channels
    trainable = conv_params(64, 7, 3, bias=False) + bn(64)
    batchnorm_channels = 64
    channels = 64
    for filters, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            trainable += conv_params(filters, 3, channels, bias=False) + bn(filters)
            trainable += conv_params(filters, 3, filters, bias=False) + bn(filters)
            batchnorm_channels += 2 * filters
            if block == 0 and stride == 2:         # 1×1 projection shortcut, with batchnorm
                trainable += conv_params(filters, 1, channels, bias=False) + bn(filters)
                batchnorm_channels += filters
            channels = filters
    trainable += dense_params(512, 1000)
    assert (trainable, batchnorm_channels) == (11_689_512, 4_800)
    report = report_of("resnet18")
    assert report.trainable_params == trainable
    assert report.non_trainable_params == 2 * batchnorm_channels
    # all of Keras's weights: 11,689,512 trainable + 2 · 4,800 moving means and variances = 11,699,112
    assert report.params == trainable + 2 * batchnorm_channels == 11_699_112


def test_resnet_floor_rounding_is_warned_about():
    """Keras's and torchvision's stems floor (224 − 7 + 2·3)/2 + 1 = 112.5 and
    (112 − 3 + 2·1)/2 + 1 = 56.5: the specs say rounding: floor there, and the check says so."""
    for name, layers in (("resnet50", {"conv1", "pool1"}), ("resnet18", {"conv1", "maxpool"})):
        warned = {re.search(r"'(\w+)'", str(w)).group(1) for w in report_of(name).warnings}
        assert layers <= warned, (name, warned)
        assert any("112.50" in str(w) for w in report_of(name).warnings)


def test_neon_example_arithmetic_is_exact():
    report = report_of("neon_example")
    assert report.warnings == []
    assert [row.output for row in report.rows] == [(33, 33, 32), (17, 17, 32), (17, 17, 64), (9, 9, 64), (5184,), (10,)]
    expected = conv_params(32, 3, 3) + conv_params(64, 3, 32) + dense_params(9 * 9 * 64, 10)
    assert report.params == expected == 71_242


def test_neon_example_on_an_even_input_is_an_error():
    """Why the spec says 33×33: at 32 the 3×3 stride-2 pool with padding 1 gives (32 − 3 + 2·1)/2 + 1 = 16.5."""
    text = (SPECS / "neon_example.yaml").read_text(encoding="utf-8").replace("input: [33, 33, 3]", "input: [32, 32, 3]")
    report = infer(parse_spec(text, "neon_32.yaml"))
    assert not report.valid
    assert "16.50" in str(report.errors[0]) and "pool1" in str(report.errors[0])


def test_segmentation_specs_give_a_class_map_per_pixel():
    for name in ("unet", "segnet"):
        report = report_of(name)
        assert report.output[:2] == report.input[:2]
        assert report.output[2] >= 2
        assert 10_000 < report.params < 1_000_000, (name, report.params)   # trains on a CPU
    assert sum(row.kind == "max_unpool" for row in report_of("segnet").rows) == 3
    assert sum(row.kind == "conv_transpose" for row in report_of("unet").rows) == 3


def test_every_spec_checks_without_importing_tensorflow():
    """`cnnbuild check` exits 0 on every spec, and the check path never imports TensorFlow or Keras."""
    paths = sorted(str(p) for p in SPECS.glob("*.yaml"))
    program = (
        "import sys\n"
        "from cnnbuild.cli import main\n"
        "codes = [main(['check', path]) for path in sys.argv[1:]]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print('CODES', codes, 'HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", program, *paths], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"CODES {[0] * len(paths)} HEAVY []" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_every_spec_has_a_description():
    for path in sorted(SPECS.glob("*.yaml")):
        assert len(load_spec(path).description) > 40, path.name

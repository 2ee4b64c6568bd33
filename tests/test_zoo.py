"""The zoo (specs/) against references from outside cnnbuild.

- vgg16, resnet50, mobilenet_v2: keras.applications itself, built in the test: parameter
  counts, the output shape of every stage, and (with the reference's weights copied in)
  the same outputs for the same images, so the spec builds the very same function.
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

from cnnbuild.build import build_model
from cnnbuild.check.report import infer
from cnnbuild.parse import load_spec, parse_spec

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
    make: object        # builds the keras.applications model
    stages: object      # report → {our top-level name: Keras layer name}
    weights: object     # our layer name → Keras layer name
    features: tuple     # (our layer, Keras layer) pairs whose outputs are compared numerically


REFERENCES = {
    "vgg16": Reference(_vgg16, _vgg16_stages, lambda name: name,
                       (("block1_pool", "block1_pool"), ("block5_pool", "block5_pool"))),
    "resnet50": Reference(_resnet50, _resnet50_stages, _resnet50_weights,
                          (("pool1", "pool1_pool"), ("conv2_block1", "conv2_block1_out"), ("conv5_block3", "conv5_block3_out"))),
    "mobilenet_v2": Reference(_mobilenet_v2, _mobilenet_v2_stages, _mobilenet_v2_weights,
                              (("block_1", "block_1_project_BN"), ("block_2", "block_2_add"), ("block_16", "block_16_project_BN"))),
}


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
    name = request.param
    spec = load_spec(SPECS / f"{name}.yaml")
    report = infer(spec)
    assert report.valid, [str(e) for e in report.errors]
    reference = REFERENCES[name]
    yield Pair(name, report, build_model(spec, report), reference.make(), reference)
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
    for layer in pair.ours.layers:
        if not layer.weights:
            continue
        source = pair.keras.get_layer(pair.reference.weights(layer.name))
        layer.set_weights(source.get_weights())
        copied.add(source.name)
    assert copied == {layer.name for layer in pair.keras.layers if layer.weights}
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

"""`backbone: {application: X}` checked through X's zoo spec (cnnbuild/zoo/): rows, multiply-adds
and receptive field without TensorFlow, while the built model is keras.applications' own (so
Keras's weights files load by name). The references come from outside the checker: each
keras.applications network built by Keras and frozen the Keras way (`layers[:N]`), and the
published receptive fields of VGG16 and ResNet-50."""
import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from cnnbuild import build_model, infer, parse_spec
from cnnbuild.layers.applications import (APPLICATION_NAMES, ZOO, ZOO_FOLDER, application_counts, application_output,
                                          application_table, min_size, zoo_fits)

ROOT = Path(__file__).resolve().parent.parent
# Input sizes each network is built at once: odd where the zoo spec fits them (the rounding of
# 'valid' windows), multiples of 32 for EfficientNetB0, which pads its stride-2 steps for even sizes
SIZES = {"VGG16": (45, 67), "ResNet50": (45, 67), "MobileNetV2": (45, 67), "EfficientNetB0": (64, 96),
         "InceptionV3": (89, 111), "MobileNetV3Small": (63, 95), "ConvNeXtTiny": (45, 67)}
HEAD = "  - global_avg_pool\n  - dense: {units: 3, activation: softmax}\n"


def _spec(name, size, freeze="false"):
    height, width = size
    return parse_spec(f"name: transfer\ninput: [{height}, {width}, 3]\nlayers:\n"
                      f"  - backbone: {{application: {name}, name: base, freeze: {freeze}}}\n{HEAD}", "transfer.yaml")


def _report(name, size, freeze="false"):
    report = infer(_spec(name, size, freeze))
    assert report.valid, [str(e) for e in report.errors]
    return report


def _counts(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _keras_freeze(model, base, n):
    """Keras's idiom on the application inside the built model: every layer trainable, then
    `for layer in base.layers[:n]: layer.trainable = False`; the whole model's counts."""
    base.trainable = True
    for layer in base.layers:
        layer.trainable = True
    for layer in base.layers[:n]:
        layer.trainable = False
    return _counts(model.trainable_weights), _counts(model.non_trainable_weights)


def _inside_a_layer(name) -> int:
    """An N that stops inside one of the zoo spec's layers, between two Keras layers with
    parameters (a convolution and its batchnorm: one spec layer, three Keras layers); VGG16's
    Keras layers are its spec's, so there N is the first that ends a convolution."""
    ends = set(ZOO[name].layer_ends())
    indices = [index for index, _, _ in application_counts(name)[1]]
    pairs = [b for a, b in zip(indices, indices[1:]) if b == a + 1]
    return next((n for n in pairs if n not in ends), pairs[0])


@pytest.fixture(scope="module", params=APPLICATION_NAMES)
def built(request):
    """Each application built once by cnnbuild (keras.applications' own network inside),
    frozen at an N inside one of its spec's layers, with its report."""
    import keras
    name = request.param
    inside = _inside_a_layer(name)
    spec = _spec(name, SIZES[name], str(inside))
    report = infer(spec)
    assert report.valid, [str(e) for e in report.errors]
    model = build_model(spec, report)
    yield name, report, model, model.get_layer("base"), inside
    keras.backend.clear_session()


def test_tables_are_keras(built):
    """The Keras layer table the checker reads and the output size at these sizes are Keras's."""
    name, _, model, base, _ = built
    frozen = [layer.trainable for layer in base.layers]
    _keras_freeze(model, base, 0)           # the table is of the unfrozen network
    assert application_table(name, base) == application_counts(name)
    for layer, trainable in zip(base.layers, frozen):
        layer.trainable = trainable
    assert tuple(base.output_shape[1:]) == application_output(name, *SIZES[name])


def test_report_is_the_zoo_spec_and_counts_as_the_built_model(built):
    """Rows from the zoo spec, with multiply-adds and a receptive field; the counts, trainable
    and not, after freezing inside a spec layer, and the output shapes are the built model's."""
    name, report, model, base, inside = built
    row = report.rows[0]
    children = [r for r in report.rows if r.depth == 1]
    assert zoo_fits(name, *SIZES[name]) and len(children) >= 15, [r.name for r in children]
    assert f"layers as zoo {ZOO[name].file}" in row.rule
    assert row.macs == sum(r.macs for r in children) > 10**6
    if name in ("EfficientNetB0", "MobileNetV3Small"):   # squeeze-and-excitation pools the whole map
        assert row.receptive_field == SIZES[name]
    else:                                                # a field, not 'the whole image' of a table row
        assert row.receptive_field != SIZES[name] and min(row.receptive_field) > 30
    assert sum(r.params for r in children) == row.params == base.count_params()
    assert (report.trainable_params, report.non_trainable_params) == (_counts(model.trainable_weights),
                                                                      _counts(model.non_trainable_weights))
    assert report.output == tuple(model.output_shape[1:]) and row.output == tuple(base.output_shape[1:])
    before, after = base.layers[inside - 1], base.layers[inside]     # Keras's layers either side of N
    assert before.weights and after.weights and (before.trainable, after.trainable) == (False, True)
    if name != "VGG16":       # a convolution and its normalisation: one layer of the zoo spec
        assert type(after).__name__ in ("BatchNormalization", "LayerNormalization"), (name, type(after).__name__)


def test_freeze_n_counts_keras_layers(built):
    """freeze: N freezes Keras's first N layers (model.layers[0] is the InputLayer): for N = 1,
    N inside a spec layer, half and all, the check's counts are Keras's after its own idiom."""
    name, _, model, base, inside = built
    count = len(base.layers)
    for n in (1, inside, count // 2, count):
        report = _report(name, SIZES[name], str(n))
        assert (report.trainable_params, report.non_trainable_params) == _keras_freeze(model, base, n), (name, n)
    # where N ends a spec layer, the rows themselves split as Keras does
    ends = ZOO[name].layer_ends()
    n = ends[len(ends) // 2]
    report = _report(name, SIZES[name], str(n))
    trainable, _ = _keras_freeze(model, base, n)
    head = report.rows[-1].params
    assert sum(r.params - r.non_trainable for r in report.rows if r.depth == 1) + head == trainable, (name, n)


def zoo_ends(name, report) -> str:
    """Zoo.ends for `name` from a report of it as a backbone: for each of the spec's layers, the
    fewest Keras layers whose parameters (PARAMETERS) hold all of it and those before it."""
    count, rows = application_counts(name)
    per_layer = [0] * count
    for index, trainable, frozen in rows:
        per_layer[index] = trainable + frozen
    prefix = list(np.cumsum([0, *per_layer]))
    ends, total = [], 0
    for row in report.rows:
        if row.depth == 1:
            total += row.params
            ends.append(next(e for e, p in enumerate(prefix) if p >= total))
    assert total == prefix[-1]
    return " ".join(map(str, ends))


@pytest.mark.parametrize("name", APPLICATION_NAMES)
def test_zoo_ends_are_generated(name):
    size = max(64, min_size(name))
    assert ZOO[name].ends == zoo_ends(name, _report(name, (size, size)))


@pytest.mark.parametrize("name", APPLICATION_NAMES)
def test_output_at_many_sizes(name):
    """The zoo spec's output is Keras's at every size it fits (against the downsampling table,
    itself checked against Keras above); elsewhere the backbone is one row, saying why."""
    low = min_size(name)
    for height, width in ((low, low), (low + 1, low + 13), (100, 100), (128, 160), (224, 224), (97, 131)):
        report = _report(name, (height, width))
        fits = zoo_fits(name, height, width)
        assert report.rows[0].output == application_output(name, height, width), (name, height, width)
        assert (report.rows[1].depth == 1) == fits, (name, height, width)
        if not fits:
            assert "pads its stride-2 steps as Keras only on even sizes" in report.rows[0].rule
    assert not zoo_fits("EfficientNetB0", 100, 100) and zoo_fits("EfficientNetB0", 128, 160)


def test_published_receptive_fields():
    """Araujo et al., "Computing receptive fields of convolutional neural networks" (Distill
    2019): VGG16 212 (at pool5), ResNet-50 483 (before its average pool)."""
    assert _report("VGG16", (224, 224)).rows[0].receptive_field == (212, 212)
    assert _report("ResNet50", (224, 224)).rows[0].receptive_field == (483, 483)


def test_check_without_tensorflow_shows_the_layers(tmp_path):
    """`cnnbuild check` on every application backbone: rows and multiply-adds, and neither
    TensorFlow nor Keras imported."""
    paths = []
    for name in APPLICATION_NAMES:
        height, width = SIZES[name]
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"name: t\ninput: [{height}, {width}, 3]\nlayers:\n  - backbone: {{application: {name}}}\n{HEAD}",
                        encoding="utf-8")
        paths.append(str(path))
    program = (
        "import io, json, sys, contextlib\n"
        "from cnnbuild.cli import main\n"
        "for path in sys.argv[1:]:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        main(['check', '--json', path])\n"
        "    doc = json.loads(out.getvalue())\n"
        "    print('ROW', doc['valid'], len(doc['layers'][0]['children']) > 10, doc['macs'] > 10**6)\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    result = subprocess.run([sys.executable, "-c", program, *paths], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("ROW True True True") == len(paths), result.stdout
    assert "HEAVY []" in result.stdout


def test_table_shows_the_backbone_whole():
    """The check's table: the backbone's caveat is printed in full under the table."""
    from cnnbuild.check.report import format_table
    table = format_table(_report("EfficientNetB0", (100, 100), "10"))
    rule = "keras.applications EfficientNetB0, no top, first 10 of 237 Keras layers frozen; MACs not counted"
    assert any(line.startswith(f"base: {rule}") and line.endswith("(a multiple of 32 fits)") for line in table.splitlines())


def test_zoo_specs_are_package_data():
    """The zoo ships inside the package (an installed cnnbuild finds it), pyproject.toml says
    so, and specs/ shows the same files."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cnnbuild"]
    package = ROOT / "cnnbuild"
    assert ZOO_FOLDER == package / "zoo"
    for zoo in ZOO.values():
        assert zoo.path().is_file()
        assert any(fnmatch.fnmatch(str(zoo.path().relative_to(package)), p) for p in patterns)
        assert (ROOT / "specs" / zoo.file).read_bytes() == zoo.path().read_bytes()

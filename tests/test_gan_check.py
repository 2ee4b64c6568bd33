"""GAN specs, TensorFlow-free: parsed into a GanSpec (two ordinary Specs whose inputs are what
the built bodies receive), checked network by network and as a pair. Every bad spec in
tests/specs/gan/bad/ gives exactly the errors its `.expected` file lists, each at its
file:line:column with a hint (the format of tests/specs/bad/); the parameter counts are
checked against a conditional pair built by hand in Keras."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from cnnbuild import infer
from cnnbuild.families.gan.check import GanReport, infer_gan
from cnnbuild.cli import main
from cnnbuild.errors import SpecError, UsageError
from cnnbuild import load_spec, parse_spec, resolve_spec
from cnnbuild.families.gan.spec import GanSpec
from cnnbuild.parse.overrides import given, setting
from cnnbuild.parse.source import load, parse_text
from cnnbuild import spec_schema

from conftest import ROOT
from test_bad_specs import expected

GAN = Path(__file__).parent / "specs" / "gan"
BAD = sorted((GAN / "bad").glob("*.yaml"))
GOOD = sorted((GAN / "good").glob("*.yaml"))
VALIDATOR = Draft7Validator(spec_schema())


def run(*args):
    """`cnnbuild ARGS` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


# --- bad specs: every error at its place, with a hint ----------------------------------------

def test_every_bad_gan_fixture_has_its_expected_errors():
    assert len(BAD) >= 7
    for fixture in BAD:
        assert fixture.with_suffix(".expected").exists(), f"{fixture.name} has no .expected file"


@pytest.mark.parametrize("fixture", BAD, ids=lambda p: p.stem)
def test_bad_gan_spec_reports_every_error_with_place_and_hint(fixture):
    status, wanted = expected(fixture)
    code, out, err = run("check", fixture, "--json")
    assert code == status and "Traceback" not in err
    document = json.loads(out)
    assert document["valid"] is False
    errors = document["errors"]
    for error in errors:
        assert error["file"] == str(fixture) and error["hint"], error
    for row, column, path, message, hint in wanted:
        assert [e for e in errors if (e["line"], e["column"], e["path"]) == (row, column, path)
                and message in e["message"] and hint in e["hint"]], \
            f"no error at {row}:{column} {path!r} with {message!r} / hint {hint!r}; got {errors}"
    assert len(errors) == len(wanted), [(e["line"], e["column"], e["path"], e["message"]) for e in errors]


@pytest.mark.parametrize("fixture", BAD, ids=lambda p: p.stem)
def test_bad_gan_spec_text_names_file_line_column(fixture):
    status, wanted = expected(fixture)
    code, _, err = run("check", fixture)
    assert code == status
    for row, column, path, message, hint in wanted:
        assert f"error: {fixture}:{row}:{column}: {path + ': ' if path else ''}" in err
        assert message in err and hint in err


# --- good specs: what the later stages read --------------------------------------------------

@pytest.mark.parametrize("fixture", GOOD, ids=lambda p: p.stem)
def test_good_gan_specs_check_and_validate(fixture):
    code, out, err = run("check", fixture)
    assert code == 0, err
    assert "── generator" in out and "── discriminator" in out and f"{fixture}: ok" in out
    assert not list(VALIDATOR.iter_errors(load(fixture).plain()))
    code, out, _ = run("check", fixture, "--json")
    document = json.loads(out)
    assert code == 0 and document["valid"] and document["generator"]["output"] == document["image_shape"]
    assert document["discriminator"]["output"] == [1]
    assert document["params"] == document["generator"]["params"] + document["discriminator"]["params"]


def test_conditional_inputs_are_what_the_bodies_receive():
    spec = load_spec(GAN / "good" / "cgan_digits.yaml")
    assert isinstance(spec, GanSpec)
    # noise 32 + 10 one-hot digits; the image 8×8×1 with 10 label channels joined
    assert (spec.generator.input, spec.discriminator.input, spec.image_shape, spec.classes) == ((42,), (8, 8, 11), (8, 8, 1), 10)
    assert (spec.generator.name, spec.discriminator.name) == ("generator", "discriminator")
    assert spec.gan.loss == "non_saturating" and spec.gan.generator_optimizer.learning_rate == 0.0002
    assert spec.train.epochs == 30 and spec.data.kind == "digits"
    report = infer(spec)
    assert isinstance(report, GanReport) and report.valid and report.pixel_range == (-1.0, 1.0)


def test_networks_from_files_and_shared_blocks():
    spec = load_spec(GAN / "good" / "shared_blocks.yaml")
    assert spec.generator.name == "g" and spec.discriminator.name == "critic"
    assert spec.discriminator.input == spec.image_shape == (8, 8, 3) and spec.classes == 0
    assert [layer.kind for layer in spec.generator.layers][2:4] == ["up", "up"]   # the top level's block, used
    assert spec.gan.discriminator_optimizer.name == "sgd"                         # `discriminator_optimizer: sgd`
    assert infer_gan(spec).pixel_range == (0.0, 1.0)                               # it ends in sigmoid
    files = load_spec(GAN / "good" / "from_files.yaml")
    assert files.generator.name == "g_file" and files.generator.input == (8,)


def test_resolved_spec_reads_the_same_from_any_folder(tmp_path, monkeypatch):
    """A run folder's spec.yaml (the resolved tree) names the generator's file absolutely."""
    resolved = resolve_spec(GAN / "good" / "from_files.yaml", [given("train.epochs", 3, "--epochs")])
    assert Path(resolved.resolved["generator"]).is_absolute()
    copy = tmp_path / "elsewhere" / "spec.yaml"
    copy.parent.mkdir()
    copy.write_text(yaml.safe_dump(resolved.resolved), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    again = load_spec(copy)
    assert again.generator == resolved.generator and again.train.epochs == 3


def test_overrides_work_on_gan_specs():
    path = GAN / "good" / "shared_blocks.yaml"
    spec = resolve_spec(path, [setting("gan.noise", "24"), setting("gan.discriminator_optimizer.learning_rate", "0.05"),
                               given("data.source", "digits", "--data"), given("data.path", None, "--data")])
    assert spec.generator.input == (24,) and spec.data.kind == "digits"
    assert (spec.gan.discriminator_optimizer.name, spec.gan.discriminator_optimizer.learning_rate) == ("sgd", 0.05)
    with pytest.raises(SpecError, match="'noise' must be >= 1"):
        load_spec(path, [setting("gan.noise", "0")])


def test_classes_from_a_directory_of_class_folders(tmp_path):
    shutil.copytree(GAN / "bad" / "three_classes", tmp_path / "three_classes")
    text = (GAN / "bad" / "wrong_classes.yaml").read_text().replace(", classes: 10", "")
    (tmp_path / "gan.yaml").write_text(text)
    spec = load_spec(tmp_path / "gan.yaml")
    assert spec.classes == 3 and spec.generator.input == (19,) and spec.discriminator.input == (8, 8, 4)
    assert infer(spec).valid


def test_a_gan_spec_is_not_one_model():
    import cnnbuild
    with pytest.raises(UsageError, match="is a GAN spec"):
        cnnbuild.build_model(GAN / "good" / "cgan_digits.yaml")


def test_draw_writes_both_networks(tmp_path):
    code, out, _ = run("draw", GAN / "good" / "cgan_digits.yaml", "--out", tmp_path / "cgan.svg")
    assert code == 0
    for role in ("generator", "discriminator"):
        assert (tmp_path / f"cgan_{role}.svg").read_text().startswith("<")


def test_check_of_a_gan_spec_never_imports_tensorflow():
    program = ("import sys; from cnnbuild.cli import main; "
               f"assert main(['check', {str(GAN / 'good' / 'cgan_digits.yaml')!r}, '--json']) == 0; "
               "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_the_readme_example_is_a_valid_gan_spec():
    section = (ROOT / "docs" / "guides" / "gans.md").read_text(encoding="utf-8")   # the README's, moved to docs/
    text = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    spec = parse_spec(text, "README.md")
    assert isinstance(spec, GanSpec) and infer(spec).valid
    assert not list(VALIDATOR.iter_errors(parse_text(text).plain()))


def test_schema_refuses_what_the_checker_refuses():
    for fixture in ("unknown_keys", "train_keys"):
        assert list(VALIDATOR.iter_errors(load(GAN / "bad" / f"{fixture}.yaml").plain())), fixture


# --- the outside reference: a conditional pair built by hand in Keras ---------------------------

PAIR = """
name: pair
gan: {noise: 16, conditional: true}
generator:
  layers:
    - dense: {units: 64, activation: relu}
    - reshape: [4, 4, 4]
    - conv_transpose: {filters: 1, kernel: 4, stride: 2, padding: same, activation: tanh}
discriminator:
  input: [8, 8, 1]
  layers:
    - conv: {filters: 8, kernel: 3, stride: 2, padding: same}
    - leaky_relu: 0.2
    - flatten
    - dense: 1
data: digits
"""


def test_param_counts_equal_a_pair_built_by_hand_in_keras():
    import keras
    from keras import layers, ops
    report = infer(parse_spec(PAIR))
    assert report.valid
    # G(z|y): the noise joined with the label's one-hot, then the same layers
    noise, label = keras.Input((16,)), keras.Input((), dtype="int32")
    x = layers.Concatenate()([noise, ops.one_hot(label, 10)])
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Reshape((4, 4, 4))(x)
    image = layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh")(x)
    generator = keras.Model([noise, label], image)
    # D(x|y): the image with the one-hot label as 10 constant channels
    picture, label = keras.Input((8, 8, 1)), keras.Input((), dtype="int32")
    channels = ops.broadcast_to(ops.reshape(ops.one_hot(label, 10), (-1, 1, 1, 10)), (ops.shape(picture)[0], 8, 8, 10))
    x = layers.Concatenate()([picture, channels])
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = layers.LeakyReLU(0.2)(x)
    score = layers.Dense(1)(layers.Flatten()(x))
    discriminator = keras.Model([picture, label], score)
    assert generator.output_shape == (None, *report.image_shape)
    assert (report.generator.params, report.discriminator.params) == (generator.count_params(), discriminator.count_params())
    # and by the seeds' arithmetic: (26·64 + 64) + (4·4·4·1 + 1) = 1,728 + 65; (3·3·11·8 + 8) + (128 + 1) = 800 + 129
    assert (report.generator.params, report.discriminator.params) == (1_793, 929)

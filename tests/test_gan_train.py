"""`cnnbuild train GAN_SPEC`: real adversarial training on the digits. The quality reference
comes from outside the GAN code: a classifier trained by cnnbuild on the same digits judges
whether each sample shows the digit it was asked for. Also: resume after a real SIGKILL,
the run folder read back, the built networks' sizes against the static check."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnbuild import UsageError, runfolder
from cnnbuild import parse_spec, resolve_spec
from cnnbuild.families.gan.training import warnings

from conftest import TINY_GAN

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "specs" / "dcgan_digits.yaml"

# The outside reference: a small classifier of the 8×8 digits, trained by cnnbuild.
JUDGE = """\
name: digits_judge
input: [8, 8, 1]
layers:
  - conv: {filters: 16, kernel: 3, padding: same, activation: relu}
  - max_pool: 2
  - conv: {filters: 32, kernel: 3, padding: same, activation: relu}
  - flatten
  - dense: {units: 10, activation: softmax}
data: {source: digits, validation_split: 0.2}
train: {epochs: 12, batch_size: 32, optimizer: {name: adam, learning_rate: 0.003}}
"""


def history(folder):
    with open(Path(folder) / runfolder.HISTORY, newline="") as f:
        return list(csv.DictReader(f))


def read_json(path):
    return json.loads(Path(path).read_text())


def write(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def train_quietly(spec, out, overrides=()):
    """cnnbuild's train() (the dispatch the command line uses) on a GAN spec file; (metrics, printed)."""
    from cnnbuild.parse.overrides import settings
    from cnnbuild import train_spec as train
    printed = io.StringIO()
    metrics = train(resolve_spec(spec, settings(list(overrides))), out=out, stdout=printed)
    return metrics, printed.getvalue()


def samples_of(run, per_class, seed=123):
    """(uint8 images, the digit asked for): generator.keras reloaded by Keras, fresh noise."""
    import keras

    import cnnbuild.layers.keras_layers  # noqa: F401  (cnnbuild's layers, for loading)
    info = read_json(run / "gan.json")
    low, high = info["pixel_range"]
    generator = keras.saving.load_model(run / "generator.keras")
    labels = np.repeat(np.arange(len(info["classes"]), dtype=np.int32), per_class)
    noise = np.random.default_rng(seed).standard_normal((len(labels), info["noise"])).astype(np.float32)
    pixels = np.asarray(generator({"noise": noise, "label": labels}, training=False))
    return np.clip(np.round((pixels - low) / (high - low) * 255), 0, 255).astype(np.uint8), labels


def test_samples_of_the_zoo_dcgan_are_recognised_by_a_separately_trained_classifier(tmp_path):
    """A short run of specs/dcgan_digits.yaml (5 of its 15 epochs): the judge, a cnnbuild
    classifier of the digits (≥ 95% on held-out real digits), reads ≥ 50% of the samples as
    the digit asked for, where chance is 10% (measured: 86% after 5 epochs, 98% after 15)."""
    import keras

    from cnnbuild.preprocess import preprocess
    from cnnbuild import train_spec as train
    judged = train(write(tmp_path, JUDGE, "judge.yaml"), out=tmp_path / "judge", stdout=io.StringIO())
    assert judged["val_accuracy"] >= 0.95
    metrics, printed = train_quietly(ZOO, tmp_path / "gan", ["train.epochs=5"])
    assert metrics["epochs"] == 5 and metrics["conditional"]
    lines = [line for line in printed.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 5 and all(w in lines[0] for w in ("D loss", "G loss", "D(x)", "D(G(z))", "img/s"))
    images, asked = samples_of(tmp_path / "gan", per_class=50)
    judge = keras.saving.load_model(tmp_path / "judge" / "model.keras")
    seen = np.asarray(judge(preprocess(images, judge.input_shape[1:]), training=False)).argmax(-1)
    recognised = float(np.mean(seen == asked))
    assert recognised >= 0.5, f"{recognised:.0%} of the samples were read as the digit asked for"


def _popen_train(spec, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "cnnbuild.cli", "train", str(spec), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def test_a_sigkilled_gan_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    spec = write(tmp_path, TINY_GAN.replace("epochs: 2", "epochs: 4"), "tiny_gan.yaml")
    straight, _ = train_quietly(spec, tmp_path / "straight")
    out = tmp_path / "run"
    process = _popen_train(spec, out)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not runfolder.checkpoint_epochs(out):
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    killed_out, _ = process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    process = _popen_train(spec, out)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    printed = [line.split()[1] for text in (killed_out, stdout) for line in text.splitlines() if line.startswith("epoch ")]
    assert len(printed) == len(set(printed)), f"an epoch was trained twice: {printed}"
    assert "resuming after epoch" in stdout
    resumed = read_json(out / runfolder.METRICS)
    for digest in ("generator_sha256", "discriminator_sha256"):
        assert resumed[digest] == straight[digest]
    strip = (lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in rows])
    assert strip(history(out)) == strip(history(tmp_path / "straight"))
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"epoch_{e:03d}.png" for e in range(1, 5)]


def test_the_run_folder_holds_what_the_contract_names_and_reads_back(gan_run):
    import keras
    from PIL import Image

    import cnnbuild.layers.keras_layers  # noqa: F401
    from cnnbuild.views.grid import grid
    info = read_json(gan_run / "gan.json")
    assert info == {"name": "tiny_gan", "noise": 16, "conditional": True, "classes": [str(i) for i in range(10)],
                    "image_shape": [8, 8, 1], "pixel_range": [-1.0, 1.0], "loss": "non_saturating"}
    rows = history(gan_run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "sample_spread"} <= set(rows[0])
    metrics = read_json(gan_run / runfolder.METRICS)
    assert metrics["epochs"] == 2 and metrics["d_loss"] == float(rows[-1]["d_loss"])
    assert isinstance(resolve_spec(gan_run / runfolder.SPEC).gan.noise, int)     # spec.yaml is a GAN spec again
    generator = keras.saving.load_model(gan_run / "generator.keras")
    discriminator = keras.saving.load_model(gan_run / "discriminator.keras")
    assert generator.output_shape == (None, 8, 8, 1) and discriminator.output_shape == (None, 1)
    # the last sample grid is the reloaded generator's picture of the fixed noise: one row per digit
    picture = np.asarray(Image.open(gan_run / "samples" / "epoch_002.png"))
    assert picture.shape == (10 * 32 + 9 * 4, 4 * 32 + 3 * 4)       # 8×8 cells enlarged ×4, 4 columns
    from cnnbuild.families.gan.training import SampleGrid
    import tensorflow as tf
    fixed = SampleGrid(tf, resolve_spec(gan_run / runfolder.SPEC), info["classes"], -1.0, 1.0)
    cells = np.round(fixed.images(generator) * 255).astype(np.uint8)
    expected = grid(cells.repeat(4, axis=1).repeat(4, axis=2), columns=4, gap=4)[:, :, 0]
    assert np.abs(picture.astype(int) - expected).max() <= 1
    assert Image.open(gan_run / runfolder.CURVES).size[0] > 0
    # the newest checkpoint holds both networks and both optimizers, and is the final state
    from cnnbuild.train.checkpoints import read_checkpoint
    meta, networks, optimizers = read_checkpoint(runfolder.checkpoint_path(gan_run, 2))
    assert meta["epoch"] == 2 and len(networks) == len(generator.variables) + len(discriminator.variables)
    assert len(optimizers) > len(generator.trainable_variables) + len(discriminator.trainable_variables)
    for stored, variable in zip(networks, list(generator.variables) + list(discriminator.variables)):
        assert np.array_equal(stored, np.asarray(variable.numpy()))


def test_a_run_folder_of_another_spec_is_refused(gan_run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(gan_run, folder)
    other = write(tmp_path, TINY_GAN.replace("noise: 16", "noise: 8"), "other.yaml")
    with pytest.raises(UsageError, match="holds a run of a different spec"):
        train_quietly(other, folder)


@pytest.mark.parametrize("text", [
    ZOO.read_text(encoding="utf-8"),
    TINY_GAN.replace("conditional: true", "conditional: false").replace("dense: 1", "dense: {units: 1, activation: sigmoid}"),
], ids=["dcgan_digits", "unconditional_sigmoid"])
def test_built_networks_have_the_parameters_the_check_reports(text):
    from cnnbuild.families.gan.models import build_gan
    from cnnbuild.families.gan.check import infer_gan
    spec = parse_spec(text)
    report = infer_gan(spec)
    generator, discriminator = build_gan(spec)
    assert generator.count_params() == report.generator.params > 0
    assert discriminator.count_params() == report.discriminator.params > 0
    assert generator.output_shape[1:] == tuple(spec.image_shape) and discriminator.output_shape == (None, 1)
    assert sorted(i.name for i in generator.inputs) == (["label", "noise"] if spec.gan.conditional else ["noise"])


def test_hinge_with_two_discriminator_steps_and_minimax_on_a_sigmoid_train(tmp_path):
    hinge = TINY_GAN.replace("conditional: true", "conditional: false, loss: hinge, discriminator_steps: 2")
    metrics, printed = train_quietly(write(tmp_path, hinge, "hinge.yaml"), tmp_path / "hinge", ["train.epochs=1"])
    assert metrics["loss"] == "hinge" and np.isfinite([metrics["d_loss"], metrics["g_loss"]]).all()
    from PIL import Image
    assert np.asarray(Image.open(tmp_path / "hinge" / "samples" / "epoch_001.png")).shape[0] == 8 * 32 + 7 * 4
    minimax = TINY_GAN.replace("conditional: true", "conditional: true, loss: minimax").replace(
        "dense: 1", "dense: {units: 1, activation: sigmoid}")
    metrics, printed = train_quietly(write(tmp_path, minimax, "minimax.yaml"), tmp_path / "minimax", ["train.epochs=1"])
    assert metrics["discriminator_output"] == "probability" and metrics["g_loss"] < 0   # log(1 − D(G(z))) < 0
    assert 0 < metrics["d_real"] < 1 and 0 < metrics["d_fake"] < 1


def test_a_discriminator_that_wins_is_warned_of_once_in_a_real_run(tmp_path):
    """G barely moving (sgd, 1e-6) against a fast D (adam, 1e-2): D(x) → 1, D(G(z)) → 0."""
    lopsided = TINY_GAN.replace("samples_per_class: 4}", "samples_per_class: 4, generator_optimizer: {name: sgd, "
                                "learning_rate: 1.0e-6}, discriminator_optimizer: {name: adam, learning_rate: 0.01}}")
    metrics, printed = train_quietly(write(tmp_path, lopsided, "lopsided.yaml"), tmp_path / "run", ["train.epochs=5"])
    assert metrics["d_real"] > 0.95 and metrics["d_fake"] < 0.05
    assert printed.count("the discriminator has won") == 1 and "lower gan.discriminator_optimizer.learning_rate" in printed
    assert len(metrics["warnings"]) == 1


def _row(epoch, real, fake, spread):
    return {"epoch": epoch, "d_real": real, "d_fake": fake, "sample_spread": spread}


@pytest.mark.parametrize("rows, expected", [
    # D(x) → 1 with D(G(z)) → 0 for three epochs: said once, on the third
    ([_row(1, 0.9, 0.1, 1.0), _row(2, 0.97, 0.02, 1.0), _row(3, 0.98, 0.01, 1.0), _row(4, 0.99, 0.01, 1.0),
      _row(5, 0.99, 0.01, 1.0)],
     [[], [], [], ["the discriminator has won"], []]),
    # a spread that fell from 0.9× the data's to 0.1×: said on the fall
    ([_row(1, 0.6, 0.4, 0.9), _row(2, 0.6, 0.4, 0.1), _row(3, 0.6, 0.4, 0.1)],
     [[], ["collapsing to one mode"], []]),
    # a balanced game with samples as varied as the data: nothing
    ([_row(e, 0.55, 0.45, 1.0) for e in range(1, 7)], [[]] * 6),
], ids=["discriminator_won", "mode_collapse", "healthy"])
def test_the_failure_modes_are_warned_of_once_when_they_begin(rows, expected):
    from cnnbuild.families.gan.spec import Gan
    said = [warnings(rows[:i], 0.12, Gan()) for i in range(1, len(rows) + 1)]
    assert len(said) == len(expected)
    for text, wanted in zip(said, expected):
        assert len(text) == len(wanted) and all(w in t for w, t in zip(wanted, text)), said

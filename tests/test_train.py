"""`cnnbuild train`: real training on small real data (scikit-learn's digits, generated
shapes), the run folder, resume after a real SIGKILL, NaN handling, the train: section."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnbuild import SpecError, load_spec, parse_spec, runfolder
from cnnbuild.cli import main
from cnnbuild.parse.sections import Train

ROOT = Path(__file__).resolve().parent.parent

TINY = """\
name: tiny
input: [8, 8, 1]
layers:
  - conv: {filters: 8, kernel: 3, padding: same, activation: relu}
  - flatten
  - dropout: 0.1
  - dense: {units: 10, activation: softmax}
augment:
  - translate: 0.1
train:
  epochs: 3
  batch_size: 64
"""


def write_spec(tmp_path, text=TINY, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def train_cli(capsys, *args):
    """`cnnbuild train …` in this process; returns (exit status, stdout, stderr)."""
    status = main(["train", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def history(folder):
    with open(Path(folder) / runfolder.HISTORY, newline="") as f:
        return list(csv.DictReader(f))


def metrics(folder):
    return json.loads((Path(folder) / runfolder.METRICS).read_text())


# ── the train: section ────────────────────────────────────────────────────────────────────

def test_defaults_are_keras_defaults_and_shorthands_expand():
    spec = parse_spec("name: n\ninput: [8, 8, 1]\nlayers: [flatten]\n")
    assert spec.train == Train() and spec.train.epochs == 1 and spec.train.batch_size == 32
    assert spec.train.optimizer.name == "adam" and spec.train.optimizer.base_learning_rate == 0.001
    spec = parse_spec("name: n\ninput: [8, 8, 1]\nlayers: [flatten]\ntrain:\n  optimizer: sgd\n  schedule: cosine\n"
                      "  early_stopping: true\n  metrics: accuracy\n  jit_compile: false\n  learning_rate: 1\n"
                      .replace("  learning_rate: 1\n", ""))
    assert spec.train.optimizer.name == "sgd" and spec.train.optimizer.base_learning_rate == 0.01
    assert spec.train.schedule.name == "cosine" and spec.train.early_stopping.patience == 5
    assert spec.train.metrics == ("accuracy",) and spec.train.jit_compile is False


@pytest.mark.parametrize("train, message", [
    ("{epochs: 0}", r"t\.yaml:4:17: train\.epochs: 'epochs' must be >= 1, got 0"),
    ("{batch_size: 1.5}", r"'batch_size' must be a whole number"),
    ("{optimizer: adamm}", r"'name' must be one of sgd, adam, adamw, rmsprop; got 'adamm'\n  hint: did you mean 'adam'"),
    ("{optimizer: {name: adam, momentum: 0.9}}", r"optimizer adam takes no 'momentum' \(it is for sgd and rmsprop\)"),
    ("{optimizer: {name: sgd, learning_rate: -1}}", r"'learning_rate' must be > 0"),
    ("{schedule: {name: cosine, every: 3}}", r"schedule cosine takes no 'every' \(it is for step\)"),
    ("{epochs: 2, schedule: {name: warmup, warmup_epochs: 2}}", r"warmup_epochs 2 leaves no epoch after the warm-up"),
    ("{mixed_precision: half}", r"'mixed_precision' must be one of auto, float32, bfloat16, float16"),
    ("{strategy: horovod}", r"'strategy' must be one of auto, default, mirrored, multi_worker, tpu"),
    ("{early_stopping: {monitor: val_acc}}", r"early_stopping monitors 'val_acc', which is not logged\n  hint: did you mean 'val_accuracy'"),
    ("{label_smoothing: 1}", r"'label_smoothing' must be < 1"),
    ("{loss: sparse_categorical_crossentropy, label_smoothing: 0.1}", r"label_smoothing needs one-hot labels"),
    ("{metrics: [accuracy, f1]}", r"must be one of accuracy, mean_iou, top_5_accuracy"),
    ("{devices: 2, strategy: default}", r"'devices' is for the mirrored strategy"),
    ("{epoch: 3}", r"unknown argument 'epoch'\n  hint: did you mean 'epochs'"),
])
def test_bad_train_values_are_spec_errors_with_their_place(train, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(f"name: n\ninput: [8, 8, 1]\nlayers: [flatten]\ntrain: {train}\n", "t.yaml")


def test_check_reports_section_errors_without_importing_tensorflow(tmp_path):
    spec = write_spec(tmp_path, TINY.replace("  - translate: 0.1", "  - crop: {size: 12}").replace("epochs: 3", "epochs: -1"))
    code = ("import sys; from cnnbuild.cli import main; status = main(['check', sys.argv[1]]); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert "tiny.yaml:9:11: augment[0].crop: size 12×12 is larger than the input 8×8" in done.stderr
    assert "tiny.yaml:11:11: train.epochs: 'epochs' must be >= 1, got -1" in done.stderr


def test_command_line_overrides_are_validated_like_the_file(tmp_path, capsys):
    spec = write_spec(tmp_path)
    status, _, err = train_cli(capsys, spec, "--set", "train.optimizer.name=adamm", "--epochs", "0")
    assert status == 1
    assert "--set:1:1: train.optimizer.name: 'name' must be one of sgd, adam" in err
    assert "--epochs:1:1: train.epochs: 'epochs' must be >= 1, got 0" in err
    status, _, err = train_cli(capsys, spec, "--data", "digts")
    assert status == 1 and "--data:1:1: data.source: unknown data source 'digts'" in err
    status, _, err = train_cli(capsys, spec, "--set", "augment.0.translate=2")
    assert status == 1 and "'fraction' must be < 1" in err
    assert "Traceback" not in err


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    status, _, err = train_cli(capsys, write_spec(tmp_path), "--out", tmp_path / "run", "--data", tmp_path / "none.npz")
    assert status == 1 and f"{tmp_path / 'none.npz'}: no such file" in err and "Traceback" not in err


# ── a run and its folder ──────────────────────────────────────────────────────────────────

def test_a_run_writes_the_run_folder(tmp_path, capsys):
    import keras

    from cnnbuild import build_model
    out = tmp_path / "run"
    status, stdout, _ = train_cli(capsys, write_spec(tmp_path), "--out", out)
    assert status == 0
    for name in (runfolder.SPEC, runfolder.CLASSES, runfolder.HISTORY, runfolder.METRICS, runfolder.MODEL, runfolder.CURVES):
        assert (out / name).is_file(), name
    rows = history(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"} <= set(rows[0])
    result = metrics(out)
    assert result["val_accuracy"] == pytest.approx(float(rows[-1]["val_accuracy"]))
    assert result["images_per_second"] > 0 and result["wall_time_seconds"] > 0 and result["epochs"] == 3
    assert json.loads((out / runfolder.CLASSES).read_text()) == [str(i) for i in range(10)]
    assert [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    # the saved model is the spec's model, with no augmentation and no optimizer in it
    saved = keras.saving.load_model(out / runfolder.MODEL, compile=False)
    reference = build_model(load_spec(out / runfolder.SPEC))
    assert [type(layer).__name__ for layer in saved.layers] == [type(layer).__name__ for layer in reference.layers]
    assert getattr(saved, "optimizer", None) is None
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(saved.predict(x, verbose=0), saved.predict(x, verbose=0))
    from PIL import Image
    assert Image.open(out / runfolder.CURVES).format == "PNG"


def test_relative_paths_are_the_spec_s_and_the_run_folder_is_self_contained(tmp_path, capsys, monkeypatch):
    """A spec's relative data path and backbone spec and weights are read from its own
    folder, whatever the working directory; the spec.yaml the run writes names them as
    absolute paths, so evaluate and export read the run folder from anywhere, and the same
    command from another folder resumes the same run."""
    import yaml

    from cnnbuild import build_model
    from sklearn.datasets import load_digits
    project = tmp_path / "project"
    for folder in (project / "specs" / "base", project / "data", project / "weights", tmp_path / "elsewhere",
                   tmp_path / "third"):
        folder.mkdir(parents=True)
    digits = load_digits()
    np.savez(project / "data" / "digits.npz", x=np.round(digits.images * 255 / 16).astype(np.uint8), y=digits.target)
    base = project / "specs" / "base" / "base.yaml"
    base.write_text("name: base\ninput: [8, 8, 1]\nlayers:\n  - conv: {filters: 8, kernel: 3, padding: same, "
                    "activation: relu}\n  - flatten\n  - dense: {units: 10, activation: softmax}\n", encoding="utf-8")
    build_model(load_spec(base)).save_weights(project / "weights" / "base.weights.h5")
    spec = project / "specs" / "net.yaml"
    spec.write_text("name: net\ninput: [8, 8, 1]\ndata: {source: npz, path: ../data/digits.npz, validation_split: 0.25}\n"
                    "layers:\n  - backbone: {spec: base/base.yaml, weights: ../weights/base.weights.h5, freeze: true}\n"
                    "  - flatten\n  - dense: {units: 10, activation: softmax}\ntrain: {epochs: 2, batch_size: 64}\n",
                    encoding="utf-8")
    monkeypatch.chdir(tmp_path / "elsewhere")
    status, _, err = train_cli(capsys, "../project/specs/net.yaml", "--out", "run", "--epochs", "1")
    assert status == 0, err
    run = tmp_path / "elsewhere" / "run"
    written = yaml.safe_load((run / runfolder.SPEC).read_text(encoding="utf-8"))
    assert written["data"]["path"] == str(project / "data" / "digits.npz")
    assert written["layers"][0]["backbone"] == {"spec": str(base), "weights": str(project / "weights" / "base.weights.h5"),
                                                "freeze": True}
    monkeypatch.chdir(tmp_path / "third")
    assert main(["evaluate", str(run), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    # validation_split 0.25 of the npz's digits, rounded as load_data rounds: round(1,797 × 0.25) = 449
    held = round(len(digits.target) * 0.25)
    assert evaluated["count"] == metrics(run)["validation_images"] == held == 449
    assert evaluated["accuracy"] == pytest.approx(metrics(run)["val_accuracy"], abs=1e-6)
    assert main(["export", str(run)]) == 0 and "verified" in capsys.readouterr().out
    monkeypatch.chdir(project)                        # the same run, named from its project folder: resumed
    status, stdout, err = train_cli(capsys, "specs/net.yaml", "--out", run)
    assert status == 0, err
    assert "resuming after epoch 1 of 2" in stdout and [int(r["epoch"]) for r in history(run)] == [1, 2]


@pytest.mark.parametrize("dotted, value, expected", [
    ("data.source", "pictures", "{cwd}/pictures"),              # --data pictures
    ("data", "pictures/*.tfrec", "{cwd}/pictures/*.tfrec"),     # a glob stays a glob
    ("data.validation.path", "../held", "{parent}/held"),
    ("data.data_dir", "~/tfds", "{home}/tfds"),
    ("layers.0.backbone.weights", "w.weights.h5", "{cwd}/w.weights.h5"),
    ("data.source", "digits", "digits"), ("data.source", "tfds:mnist", "tfds:mnist"),
    ("data.source", "digts", "digts"),                          # a typo: left for the parser to report
    ("data.samples", "2000", "2000"), ("layers.0.conv.name", "pictures", "pictures"),
    ("blocks.b.layers.0.backbone.spec", "$spec", "$spec"),     # a block parameter, substituted later
    ("data.path", "/data/x.npz", "/data/x.npz"),
])
def test_command_line_paths_are_read_from_the_working_directory(tmp_path, monkeypatch, dotted, value, expected):
    from cnnbuild.errors import Where
    from cnnbuild.parse.overrides import absolute_paths
    from cnnbuild.parse.source import Node
    monkeypatch.chdir(tmp_path)
    node = Node(value, Where("--set", 1, 1, dotted))
    absolute_paths(node, tuple(dotted.split(".")))
    assert node.value == expected.format(cwd=tmp_path, parent=tmp_path.parent, home=Path.home())


def test_on_a_terminal_progress_is_keras_s_bar(tmp_path, capsys):
    import io

    from cnnbuild import train_spec as train

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    terminal = Terminal()
    train(write_spec(tmp_path), out=tmp_path / "run", overrides=[], stdout=terminal)
    bar = capsys.readouterr().out                    # Keras writes its bar to sys.stdout
    assert "Epoch 1/3" in bar and "Epoch 3/3" in bar and "val_accuracy" in bar
    assert not any(line.startswith("epoch ") for line in terminal.getvalue().splitlines())


def test_same_seed_same_weights_and_resume_equals_one_run(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert train_cli(capsys, spec, "--out", tmp_path / "a", "--epochs", "4")[0] == 0
    assert train_cli(capsys, spec, "--out", tmp_path / "b", "--epochs", "4")[0] == 0
    assert metrics(tmp_path / "a")["weights_sha256"] == metrics(tmp_path / "b")["weights_sha256"]
    assert train_cli(capsys, spec, "--out", tmp_path / "c", "--epochs", "4", "--set", "train.seed=1")[0] == 0
    assert metrics(tmp_path / "c")["weights_sha256"] != metrics(tmp_path / "a")["weights_sha256"]
    # 2 epochs, then the same command with --epochs 4 continues: the same weights as one run of 4
    assert train_cli(capsys, spec, "--out", tmp_path / "d", "--epochs", "2")[0] == 0
    status, out, _ = train_cli(capsys, spec, "--out", tmp_path / "d", "--epochs", "4")
    assert status == 0 and "resuming after epoch 2 of 4" in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["3/4", "4/4"]
    assert metrics(tmp_path / "d")["weights_sha256"] == metrics(tmp_path / "a")["weights_sha256"]
    strip = (lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in rows])
    assert strip(history(tmp_path / "d")) == strip(history(tmp_path / "a"))


def test_a_kill_between_checkpoint_and_history_loses_nothing(tmp_path, capsys):
    """The checkpoint is written first and holds the history: if history.csv lags behind it
    (a kill between the two writes), the rerun restores the row and trains nothing again."""
    spec, out = write_spec(tmp_path), tmp_path / "run"
    assert train_cli(capsys, spec, "--out", out, "--epochs", "3")[0] == 0
    complete = history(out)
    text = (out / runfolder.HISTORY).read_text().splitlines()
    (out / runfolder.HISTORY).write_text("\n".join(text[:-1]) + "\n")      # as if killed before the history write
    for name in (runfolder.METRICS, runfolder.MODEL):
        (out / name).unlink()
    (out / runfolder.CHECKPOINTS / ".epoch-0004.npz.partial").write_bytes(b"half a write")
    status, stdout, _ = train_cli(capsys, spec, "--out", out, "--epochs", "3")
    assert status == 0 and "already complete (3 epochs)" in stdout and "epoch 3/3" not in stdout
    assert history(out) == complete and (out / runfolder.MODEL).is_file()
    assert not (out / runfolder.CHECKPOINTS / ".epoch-0004.npz.partial").exists()


def sha256_of_arrays(arrays):
    """The checksum a checkpoint's meta records, computed here from its stated rule: sha256
    over each array's dtype, shape and bytes, model arrays then optimizer arrays."""
    import hashlib
    digest = hashlib.sha256()
    for name in sorted(k for k in arrays if k.startswith("model_")) + sorted(k for k in arrays if k.startswith("optimizer_")):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{value.dtype.str}{value.shape};".encode("ascii") + value.tobytes())
    return digest.hexdigest()


def rewrite_checkpoint(path, change, checksum=True):
    """Change a checkpoint's arrays (and, with `checksum`, record their new sha256 so the
    file is a consistent archive of different content)."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    meta = json.loads(str(arrays["meta"]))
    if checksum:
        meta["sha256"] = sha256_of_arrays(arrays)
    else:
        meta.pop("sha256"), meta.pop("counts")             # as a checkpoint of cnnbuild before checksums
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_a_checkpoint_with_nan_is_not_resumed(tmp_path, capsys):
    spec, out = write_spec(tmp_path), tmp_path / "run"
    assert train_cli(capsys, spec, "--out", out, "--epochs", "2")[0] == 0
    path = runfolder.checkpoint_path(out, 2)
    with np.load(path) as archive:
        assert json.loads(str(archive["meta"]))["sha256"] == sha256_of_arrays({k: archive[k] for k in archive.files})

    def poison(arrays):
        arrays["model_00000"] = np.full_like(arrays["model_00000"], np.nan)
    rewrite_checkpoint(path, poison)
    status, stdout, _ = train_cli(capsys, spec, "--out", out, "--epochs", "3")
    assert status == 0
    assert "epoch-0002.npz holds NaN or infinite values; trying an older checkpoint" in stdout
    assert "resuming after epoch 1 of 3" in stdout
    assert [int(r["epoch"]) for r in history(out)] == [1, 2, 3]


def _flip_a_byte(data):
    data = bytearray(data)
    data[len(data) // 2] ^= 0xFF          # inside the arrays' bytes, past the zip headers
    return bytes(data)


def _wrong_values(arrays):
    arrays["model_00001"] = arrays["model_00001"] + 1.0     # the meta's sha256 kept: a changed file


def _wrong_shape(arrays):
    arrays["model_00000"] = arrays["model_00000"][..., :4]  # 8 filters → 4


DAMAGES = {        # how the newest checkpoint is damaged → what the warning says about it
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]), "cannot be read (BadZipFile"),
    "byte flipped": (lambda path: path.write_bytes(_flip_a_byte(path.read_bytes())), "cannot be read (BadZipFile: Bad CRC-32"),
    "empty": (lambda path: path.write_bytes(b""), "cannot be read (EOFError"),
    "garbage": (lambda path: path.write_bytes(np.random.default_rng(0).bytes(5000)), "cannot be read (ValueError"),
    "wrong content": (lambda path: _rewrite_keeping_meta(path, _wrong_values), "its arrays do not match the sha256"),
    "wrong shape": (lambda path: rewrite_checkpoint(path, _wrong_shape, checksum=False),
                    "does not fit this model: model array 0 has shape (3, 3, 1, 4), the variable needs (3, 3, 1, 8)"),
}


def _rewrite_keeping_meta(path, change):
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.fixture(scope="module")
def two_epochs_and_three(tmp_path_factory):
    """A run of 2 epochs (to damage copies of) and the same spec straight to 3 (the reference)."""
    folder = tmp_path_factory.mktemp("damage")
    spec = write_spec(folder)
    assert main(["train", str(spec), "--out", str(folder / "two"), "--epochs", "2"]) == 0
    assert main(["train", str(spec), "--out", str(folder / "three"), "--epochs", "3"]) == 0
    return spec, folder / "two", metrics(folder / "three")["weights_sha256"]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_newest_checkpoint_is_skipped_for_the_previous_one(tmp_path, capsys, two_epochs_and_three, damage):
    import shutil
    spec, two, reference = two_epochs_and_three
    out = tmp_path / "run"
    shutil.copytree(two, out)
    spoil, said = DAMAGES[damage]
    newest = runfolder.checkpoint_path(out, 2)
    spoil(newest)
    status, stdout, err = train_cli(capsys, spec, "--out", out, "--epochs", "3")
    assert status == 0, err
    assert f"warning: {newest} {said}" in stdout and "trying an older checkpoint" in stdout
    assert "resuming after epoch 1 of 3" in stdout
    assert [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch ")] == ["2/3", "3/3"]
    assert metrics(out)["weights_sha256"] == reference            # as if nothing had happened
    assert [int(r["epoch"]) for r in history(out)] == [1, 2, 3]


def test_with_no_usable_checkpoint_the_run_stops_saying_what_to_do(tmp_path, capsys, two_epochs_and_three):
    import shutil
    spec, two, _ = two_epochs_and_three
    out = tmp_path / "run"
    shutil.copytree(two, out)
    runfolder.checkpoint_path(out, 2).write_bytes(b"")
    runfolder.checkpoint_path(out, 1).write_bytes(b"PK\x03\x04 not really")
    status, _, err = train_cli(capsys, spec, "--out", out, "--epochs", "3")
    assert status == 1 and "Traceback" not in err
    assert f"{out}: no usable checkpoint: epoch-0002.npz cannot be read (EOFError" in err
    assert "; epoch-0001.npz cannot be read (" in err
    assert f"hint: move {out / runfolder.CHECKPOINTS} aside (or delete it) and rerun to start over" in err


def test_damaged_history_and_metrics_are_rewritten_from_the_checkpoint(tmp_path, capsys, two_epochs_and_three):
    import shutil
    spec, two, _ = two_epochs_and_three
    out = tmp_path / "run"
    shutil.copytree(two, out)
    rows, first = history(out), metrics(out)
    (out / runfolder.HISTORY).write_bytes(b"\xff\x00 not a csv")
    (out / runfolder.METRICS).write_text('{"val_accuracy": 0.9', encoding="utf-8")
    status, stdout, err = train_cli(capsys, spec, "--out", out, "--epochs", "2")
    assert status == 0, err
    assert "already complete (2 epochs)" in stdout
    assert f"warning: {out / runfolder.METRICS}: cannot be read as JSON" in stdout
    assert history(out) == rows
    again = metrics(out)
    assert again["weights_sha256"] == first["weights_sha256"] and again["val_accuracy"] == first["val_accuracy"]
    # the damaged metrics.json's wall time is lost; the newest checkpoint's is the next best
    with np.load(runfolder.checkpoint_path(out, 2)) as archive:
        assert again["wall_time_seconds"] == json.loads(str(archive["meta"]))["wall_time_seconds"] > 0


@pytest.mark.skip(reason="issue 20 refuses learning rates above 10 at check, and 1e30 was this test's way to a NaN "
                         "loss; it needs another route to a NaN at epoch 3 (sgd 10, momentum 0.99, rmsprop with "
                         "epsilon 0 all stayed finite)")
def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    spec, out = write_spec(tmp_path, TINY.replace("batch_size: 64", "batch_size: 64\n  optimizer: sgd")), tmp_path / "run"
    assert train_cli(capsys, spec, "--out", out, "--epochs", "2")[0] == 0
    # under early stopping too (a NaN val_loss is no "best"; Keras's TerminateOnNaN would stop
    # after the epoch was already saved by ModelCheckpoint): the NaN epoch is refused first
    status, _, err = train_cli(capsys, spec, "--out", out, "--epochs", "4", "--set", "train.optimizer.learning_rate=1e30",
                               "--set", "train.early_stopping={monitor: val_loss, patience: 1, restore_best: true}")
    assert status == 1 and "Traceback" not in err
    assert "epoch 3: the loss became nan; training stopped and this epoch was not saved; the last good checkpoint " \
           "(epoch 2) is kept" in err
    assert "hint: lower train.optimizer.learning_rate (now 1e+30)" in err
    assert runfolder.checkpoint_epochs(out)[0] == 2 and len(history(out)) == 2
    for epoch in runfolder.checkpoint_epochs(out):                  # every checkpoint left is whole and finite
        with np.load(runfolder.checkpoint_path(out, epoch)) as archive:
            assert all(np.isfinite(archive[k]).all() for k in archive.files if k != "meta")
    # with a sane learning rate, the same command continues from epoch 2
    status, stdout, _ = train_cli(capsys, spec, "--out", out, "--epochs", "4")
    assert status == 0 and "resuming after epoch 2 of 4" in stdout and len(history(out)) == 4


def read_events(folder):
    """{tag: {step: value}} and the graph tags of RUN/tensorboard/, read with TensorFlow's own
    event reader (tf.compat.v1.train.summary_iterator), not with what wrote them."""
    import tensorflow as tf
    scalars, graphs = {}, []
    for path in sorted((Path(folder) / runfolder.TENSORBOARD).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
                else:
                    graphs.append((value.tag, value.metadata.plugin_data.plugin_name))
    return scalars, graphs


def test_tensorboard_events_equal_the_history_after_a_resume(tmp_path, capsys):
    spec, out = write_spec(tmp_path), tmp_path / "run"
    assert train_cli(capsys, spec, "--out", out, "--epochs", "2", "--tensorboard")[0] == 0
    status, stdout, err = train_cli(capsys, spec, "--out", out, "--epochs", "3", "--set", "train.tensorboard=true")
    assert status == 0 and "resuming after epoch 2 of 3" in stdout, err
    scalars, graphs = read_events(out)
    rows = history(out)
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(scalars)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert sorted(scalars[name]) == [1, 2, 3]                   # each epoch once, across the two sessions
        for row in rows:
            assert scalars[name][int(row["epoch"])] == pytest.approx(float(row[name]), rel=1e-6)   # float32
    assert ("tiny", "graph_run_metadata_graph") in graphs          # the model's graph, for the Graphs tab
    # without the switch a run writes no events
    assert train_cli(capsys, spec, "--out", tmp_path / "plain", "--epochs", "1")[0] == 0
    assert not (tmp_path / "plain" / runfolder.TENSORBOARD).exists()


def test_more_epochs_on_a_finished_cosine_run_restart_the_cycle_and_wall_time_adds_up(tmp_path, capsys):
    spec = write_spec(tmp_path, TINY.replace("epochs: 3", "epochs: 2\n  schedule: {name: cosine, final: 0.1}"))
    out = tmp_path / "run"
    assert train_cli(capsys, spec, "--out", out)[0] == 0
    first = metrics(out)["wall_time_seconds"]
    status, stdout, _ = train_cli(capsys, spec, "--out", out)            # finished: nothing trained, time kept
    assert status == 0 and "already complete (2 epochs)" in stdout and metrics(out)["wall_time_seconds"] == first
    status, stdout, _ = train_cli(capsys, spec, "--out", out, "--epochs", "4")
    assert status == 0
    assert ("the cosine schedule ended with epoch 2; epochs 3–4 are a new cycle from the base learning rate 0.001 "
            "down to 0.0001 (a warm restart)") in stdout
    rates = [float(r["learning_rate"]) for r in history(out)]
    # the new cycle repeats the first one's rates, step for step: base·(0.1 + 0.9·½(1 + cos(π·progress)))
    assert rates[2] == pytest.approx(rates[0], rel=1e-6) and rates[3] == pytest.approx(rates[1], rel=1e-6)
    assert rates[1] == pytest.approx(0.001 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 45 / 46))), rel=1e-5)
    assert metrics(out)["wall_time_seconds"] > first                  # the two sessions that trained, summed


def test_a_folder_of_another_spec_is_refused(tmp_path, capsys):
    spec, out = write_spec(tmp_path), tmp_path / "run"
    assert train_cli(capsys, spec, "--out", out, "--epochs", "1")[0] == 0
    other = write_spec(tmp_path, TINY.replace("filters: 8", "filters: 4"), "other.yaml")
    status, _, err = train_cli(capsys, other, "--out", out)
    assert status == 2 and "holds a run of a different spec ('layers' differs)" in err


def test_early_stopping_and_restore_best(tmp_path, capsys):
    text = TINY.replace("epochs: 3", "epochs: 10\n  early_stopping: {monitor: val_loss, patience: 2, min_delta: 0.5, "
                        "restore_best: true}")
    spec, out = write_spec(tmp_path, text), tmp_path / "run"
    status, stdout, _ = train_cli(capsys, spec, "--out", out)
    assert status == 0
    result, losses = metrics(out), [float(r["val_loss"]) for r in history(out)]
    best = 0                     # Keras's rule: an improvement is a drop of more than min_delta
    for i, loss in enumerate(losses):
        if loss < losses[best] - 0.5:
            best = i
    assert result["stopped"] == "early_stopping" and len(losses) == best + 1 + 2 < 10
    assert result["restored_best_epoch"] == best + 1 and result["val_loss"] == pytest.approx(losses[best])
    assert runfolder.checkpoint_path(out, best + 1).is_file()        # kept for restore_best
    status, stdout, _ = train_cli(capsys, spec, "--out", out)
    assert status == 0 and "already stopped early" in stdout


@pytest.mark.parametrize("optimizer", ["{name: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true}", "adam",
                                       "{name: adamw, weight_decay: 0.01}", "{name: rmsprop, rho: 0.8}"])
def test_each_optimizer_learns(tmp_path, capsys, optimizer):
    out = tmp_path / "run"
    status, _, err = train_cli(capsys, write_spec(tmp_path), "--out", out, "--set", f"train.optimizer={optimizer}",
                               "--set", "train.schedule={name: step, every: 1, factor: 0.5}", "--set", "augment=[]")
    assert status == 0, err
    rows = history(out)
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) and float(rows[-1]["val_accuracy"]) > 0.5
    rates = [float(r["learning_rate"]) for r in rows]
    assert rates[1] == pytest.approx(rates[0] / 2) and rates[2] == pytest.approx(rates[0] / 4)


def test_schedules_follow_their_formulas():
    import keras

    from cnnbuild.train.objective import make_schedule
    section = parse_spec("name: n\ninput: [8, 8, 1]\nlayers: [flatten]\ntrain: {epochs: 10, optimizer: "
                         "{name: adam, learning_rate: 0.1}, schedule: {name: cosine, warmup_epochs: 2, final: 0.1}}\n").train
    rate = make_schedule(keras, section, steps_per_epoch=5, epochs=10)
    assert float(rate(0)) == pytest.approx(0.1 / 10) and float(rate(4)) == pytest.approx(0.1 * 5 / 10)
    assert float(rate(10)) == pytest.approx(0.1)                       # warm-up over, cosine starts at the base
    assert float(rate(30)) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))   # half way
    assert float(rate(50)) == pytest.approx(0.01)                      # the end: final × base


def test_label_smoothing_metrics_and_a_sigmoid_output(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = train_cli(capsys, write_spec(tmp_path), "--out", out, "--epochs", "2", "--set",
                               "train.label_smoothing=0.1", "--set", "train.metrics=[accuracy, top_5_accuracy, mean_iou]",
                               "--set", "augment=[mixup]")
    assert status == 0, err
    assert {"val_accuracy", "val_top_5_accuracy", "val_mean_iou"} <= set(metrics(out))
    # two classes with one sigmoid output: binary cross-entropy, labels 0/1
    from sklearn.datasets import load_digits
    digits = load_digits()
    keep = digits.target < 2
    np.savez(tmp_path / "pair.npz", x=np.round(digits.images[keep] * 255 / 16).astype(np.uint8), y=digits.target[keep])
    binary = TINY.replace("units: 10, activation: softmax", "units: 1, activation: sigmoid")
    status, _, err = train_cli(capsys, write_spec(tmp_path, binary, "binary.yaml"), "--out", tmp_path / "binary",
                               "--data", tmp_path / "pair.npz")
    assert status == 0, err
    assert metrics(tmp_path / "binary")["val_accuracy"] > 0.9


def test_bfloat16_jit_steps_per_execution_and_device_augmentation(tmp_path, capsys):
    import keras
    out = tmp_path / "run"
    status, _, err = train_cli(capsys, write_spec(tmp_path), "--out", out, "--epochs", "2",
                               "--set", "train.mixed_precision=bfloat16", "--set", "train.jit_compile=false",
                               "--set", "train.steps_per_execution=4", "--set", "train.augment_on=device")
    assert status == 0, err
    result = metrics(out)
    assert result["mixed_precision"] == "mixed_bfloat16" and result["augment_on"] == "device"
    assert keras.mixed_precision.global_policy().name == "float32"       # not left on for what follows
    saved = keras.saving.load_model(out / runfolder.MODEL, compile=False)
    assert all(layer.dtype_policy.name == "float32" for layer in saved.layers)
    assert saved.name == "tiny"                                             # the model, not the training wrapper


# ── logits or probabilities: read from the built model ─────────────────────────────────────

BLOCK_HEAD = TINY.replace("""layers:
  - conv: {filters: 8, kernel: 3, padding: same, activation: relu}
  - flatten
  - dropout: 0.1
  - dense: {units: 10, activation: softmax}
""", """blocks:
  head:
    params: {classes: required}
    layers:
      - dropout: 0.1
      - dense: {units: $classes, activation: softmax}
layers:
  - conv: {filters: 8, kernel: 3, padding: same, activation: relu}
  - flatten
  - head: {classes: 10}
""")
FINE_TUNE = """\
name: fine
input: [8, 8, 1]
layers:
  - backbone: {spec: tiny.yaml, include_top: true}
augment:
  - translate: 0.1
train:
  epochs: 3
  batch_size: 64
"""
LAST_LAYERS = {     # the spec's last entries → does the built model end in probabilities?
    "dense softmax": ("- flatten\n  - dense: {units: 10, activation: softmax}", True),
    "dense logits": ("- flatten\n  - dense: 10", False),
    "softmax layer": ("- flatten\n  - dense: 10\n  - softmax", True),
    "activation linear": ("- flatten\n  - dense: {units: 10, activation: softmax}\n  - activation: linear", True),
    "relu after softmax": ("- flatten\n  - dense: {units: 10, activation: softmax}\n  - relu", False),
    "sigmoid": ("- flatten\n  - dense: {units: 1, activation: sigmoid}", True),
    "conv batchnorm softmax": ("- conv: {filters: 4, kernel: 1, batchnorm: true, activation: softmax}", True),
    "repeat": ("- flatten\n  - repeat: {times: 2, layers: [{dense: {units: 10, activation: softmax}}]}", True),
    "residual logits": ("- residual: {body: [{conv: {filters: 1, kernel: 3, padding: same}}]}", False),
}


@pytest.mark.parametrize("case", sorted(LAST_LAYERS))
def test_ends_in_probabilities_follows_the_built_graph(case):
    from cnnbuild import build_model
    from cnnbuild.assemble import ends_in_probabilities
    layers, expected = LAST_LAYERS[case]
    model = build_model(parse_spec(f"name: n\ninput: [8, 8, 1]\nlayers:\n  {layers}\n"))
    assert ends_in_probabilities(model) is expected


@pytest.mark.parametrize("variant", ["block", "backbone"])
def test_a_softmax_inside_a_block_or_backbone_trains_like_the_plain_spec(tmp_path, capsys, variant):
    """The spec's last entry is a block use or a backbone with its top, both ending in a
    softmax dense layer: the loss must take probabilities (from_logits false), so one epoch
    gives the plain spec's loss and weights (same seed). In bfloat16, where Keras cannot
    recover the softmax's logits, deciding from the spec's last entry (from_logits true)
    gave loss 2.2864 here instead of 2.1847."""
    plain = write_spec(tmp_path)                                   # tiny.yaml, the backbone's spec too
    other = write_spec(tmp_path, BLOCK_HEAD if variant == "block" else FINE_TUNE, f"{variant}.yaml")
    for spec, out in ((plain, "plain"), (other, variant)):
        status, _, err = train_cli(capsys, spec, "--out", tmp_path / out, "--epochs", "1",
                                   "--set", "train.mixed_precision=bfloat16")
        assert status == 0, err
    expected, got = metrics(tmp_path / "plain"), metrics(tmp_path / variant)
    assert got["from_logits"] is False and expected["from_logits"] is False
    assert got["loss_function"] == "SparseCategoricalCrossentropy"
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6) and got["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-6)
    assert got["weights_sha256"] == expected["weights_sha256"]


# ── end to end, in their own processes ────────────────────────────────────────────────────

@pytest.mark.slow
def test_lenet5_reaches_97_percent_on_the_digits_with_a_log_of_one_line_per_epoch(tmp_path):
    """The acceptance run: `cnnbuild train specs/lenet5.yaml` as a user types it, output piped."""
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "cnnbuild.cli", "train", str(ROOT / "specs" / "lenet5.yaml"),
                           "--out", str(tmp_path / "lenet5")], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    seconds = time.time() - started
    assert done.returncode == 0, done.stderr
    result = metrics(tmp_path / "lenet5")
    assert result["val_accuracy"] >= 0.97
    assert seconds < 180
    assert "\r" not in done.stdout
    epoch_lines = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == result["epochs"] == len(history(tmp_path / "lenet5"))


def _popen_train(spec, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "cnnbuild.cli", "train", str(spec), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.mark.slow
def test_sigkill_at_any_moment_loses_no_epoch_and_trains_none_twice(tmp_path, capsys):
    text = TINY.replace("input: [8, 8, 1]", "input: [16, 16, 1]").replace("epochs: 3", "epochs: 10")
    spec = write_spec(tmp_path, text)
    assert train_cli(capsys, spec, "--out", tmp_path / "straight")[0] == 0     # the uninterrupted reference
    out = tmp_path / "run"
    printed = []
    for rows_before_kill, delay in ((1, 0.0), (4, 0.07), (6, 0.19)):
        process = _popen_train(spec, out)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if (out / runfolder.HISTORY).is_file() and len(history(out)) >= rows_before_kill:
                break
            time.sleep(0.005)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        stdout, _ = process.communicate()
        printed += [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch ")]
    process = _popen_train(spec, out)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    printed += [line.split()[1] for line in stdout.splitlines() if line.startswith("epoch ")]
    assert len(printed) == len(set(printed)), f"an epoch was trained twice: {printed}"
    assert [int(r["epoch"]) for r in history(out)] == list(range(1, 11))
    assert metrics(out)["weights_sha256"] == metrics(tmp_path / "straight")["weights_sha256"]


@pytest.mark.slow
def test_unet_learns_shapes_masks_well_above_chance(tmp_path, capsys):
    import keras

    from cnnbuild.sources.shapes import generate_shapes
    from cnnbuild.preprocess import preprocess
    out = tmp_path / "unet"
    status, _, err = train_cli(capsys, ROOT / "specs" / "unet.yaml", "--out", out, "--data", "shapes",
                               "--set", "input=[32, 32, 3]", "--set", "data.samples=600", "--epochs", "8",
                               "--set", "train.batch_size=16", "--set", "train.optimizer={name: adam, learning_rate: 0.002}")
    assert status == 0, err
    # judged on new images, with numpy, against the best constant guess (all background)
    images, _, masks = generate_shapes(120, 32, 32, 3, seed=2024)
    model = keras.saving.load_model(out / runfolder.MODEL, compile=False)
    predicted = model.predict(preprocess(images, (32, 32, 3)), verbose=0).argmax(-1)

    def mean_iou(guess):
        ious = [np.logical_and(guess == c, masks == c).sum() / max(np.logical_or(guess == c, masks == c).sum(), 1)
                for c in range(4)]
        return float(np.mean(ious))
    chance = mean_iou(np.zeros_like(masks))
    assert chance < 0.25 and mean_iou(predicted) > 0.5, (mean_iou(predicted), chance)
    assert metrics(out)["val_mean_iou"] > 0.5

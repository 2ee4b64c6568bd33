"""Export: every format round-trips and verifies on a model trained a few steps; a failed or
interrupted export never leaves a half-written folder and never replaces a good one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnbuild.cli import main
from cnnbuild.serve.export import FORMATS, ExportError, export_run, open_export, probe_images
from run_helpers import DIGIT_CLASSES, digits, make_run

OPTIONAL = {"onnx": ("tf2onnx", "onnxruntime")}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("export") / "run")


def keras_probabilities(run_dir, images):
    """The trained model's answer computed with Keras and tf.image directly, not with the
    export module's own helpers: model.keras loaded by keras.saving, the uint8 images resized
    bilinearly to the input size and divided by 255 (the README's preprocessing), SMALL_SPEC's
    softmax output read as it is."""
    import keras
    import tensorflow as tf

    import cnnbuild.layers.keras_layers  # noqa: F401  (registers cnnbuild's Keras layers for loading)
    model = keras.saving.load_model(Path(run_dir) / "model.keras")
    height, width, _ = model.input_shape[1:]
    x = tf.image.resize(tf.cast(images, tf.float32), (height, width), method="bilinear") / 255.0
    return np.asarray(model(x, training=False))


def _need(format):
    for module in OPTIONAL.get(format, ()):
        pytest.importorskip(module, reason=f"--format {format} needs {module} (pip install 'cnnbuild[{format}]')")


@pytest.mark.parametrize("format", FORMATS)
def test_each_format_round_trips_and_verifies(run, tmp_path, format):
    _need(format)
    out = tmp_path / format
    manifest = export_run(run, out, format)
    check = manifest["verified"]
    assert check["max_abs_diff"] <= 1e-5 and check["deterministic"] and check["images"] >= 12
    assert json.loads((out / "classes.json").read_text()) == DIGIT_CLASSES
    assert json.loads((out / "export.json").read_text())["verified"] == check
    # reload on its own and compare with the trained Keras model on real digits, any batch size
    export = open_export(out)
    images, labels = digits()
    for batch in (images[:1], images[:37]):
        probabilities, ids = export(batch)
        assert probabilities.shape == (len(batch), 10) and ids.dtype == np.int64
        np.testing.assert_allclose(probabilities, keras_probabilities(run, batch), atol=1e-5, rtol=0)
        assert np.array_equal(ids, probabilities.argmax(-1))
    again, _ = export(images[:37])
    assert np.array_equal(again, export(images[:37])[0])     # dropout never active: same output twice
    accuracy = (export(images)[1] == labels).mean()
    assert accuracy > 0.8, accuracy                          # it is the trained model, not a fresh one


def test_savedmodel_needs_tensorflow_alone(run, tmp_path):
    """A fresh interpreter with TensorFlow and nothing of cnnbuild serves the export: raw uint8
    images of another size and channel count, class names as an output."""
    out = tmp_path / "savedmodel"
    export_run(run, out)
    script = """
import sys, numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
rgb = np.random.default_rng(0).integers(0, 256, (3, 40, 29, 3)).astype(np.uint8)
out = served(images=tf.constant(rgb))
import json
print(json.dumps({"shape": out["probabilities"].shape.as_list(), "ids": out["class_id"].dtype.name,
                  "names": [n.decode() for n in out["class_name"].numpy()],
                  "cnnbuild": [m for m in sys.modules if m.startswith("cnnbuild")]}))
"""
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["shape"] == [3, 10] and served["ids"] == "int64" and served["cnnbuild"] == []
    assert len(served["names"]) == 3 and set(served["names"]) <= set(DIGIT_CLASSES)


def test_logits_get_a_softmax(tmp_path):
    spec = """\
name: logits
input: [16, 16, 1]
layers:
  - conv: {filters: 4, kernel: 3, activation: relu}
  - flatten
  - dense: 10
"""
    run = make_run(tmp_path / "run", spec_text=spec, epochs=1)
    manifest = export_run(run, tmp_path / "out")
    probabilities, _ = open_export(tmp_path / "out")(digits()[0][:5])
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert manifest["verified"]["max_abs_diff"] <= 1e-5


BLOCK_HEAD_SPEC = """\
name: small_block
input: [16, 16, 1]
blocks:
  head:
    layers:
      - flatten
      - dropout: 0.3
      - dense: {units: 10, activation: softmax}
layers:
  - conv: {filters: 8, kernel: 3, padding: same, activation: relu}
  - max_pool: 2
  - head
"""


def test_a_softmax_inside_a_block_gets_no_second_softmax(tmp_path):
    """The spec's last entry is a block use whose last layer is a softmax dense layer: export
    reads the built model's output (build.ends_in_probabilities) and adds no softmax, so the
    exported probabilities are the trained model's own, not softmax(probabilities)."""
    import keras

    from cnnbuild.preprocess import preprocess
    run = make_run(tmp_path / "run", spec_text=BLOCK_HEAD_SPEC, epochs=1)
    export_run(run, tmp_path / "export")
    images, _ = digits()
    probabilities, _ = open_export(tmp_path / "export")(images[:20])
    model = keras.saving.load_model(run / "model.keras", compile=False)
    np.testing.assert_allclose(probabilities, model.predict(preprocess(images[:20], (16, 16, 1)), verbose=0),
                               atol=1e-5, rtol=0)
    assert probabilities.max() > 0.5          # a second softmax would flatten them towards 1/10


def test_failed_verification_keeps_the_previous_export(run, tmp_path):
    out = tmp_path / "savedmodel"
    export_run(run, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ExportError, match="nothing was replaced"):
        export_run(run, out, tolerance=-1.0)       # no export can pass: verification fails for real
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["savedmodel"]     # no partial folder left beside it
    assert open_export(out)(probe_images((16, 16, 1))[0])[0].shape == (9, 10)


def test_a_failed_first_export_leaves_nothing(run, tmp_path):
    with pytest.raises(ExportError):
        export_run(run, tmp_path / "new", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_killed_export_keeps_the_previous_one(run, tmp_path):
    out = tmp_path / "savedmodel"
    export_run(run, out)
    manifest = (out / "export.json").read_bytes()
    process = subprocess.Popen([sys.executable, "-m", "cnnbuild.cli", "export", str(run), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".savedmodel.partial-*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(tmp_path.glob(".savedmodel.partial-*")), "the export finished before it could be killed"
    assert (out / "export.json").read_bytes() == manifest              # the good export is untouched
    assert open_export(out)(probe_images((16, 16, 1))[0])[0].shape == (9, 10)
    export_run(run, out)                                               # the next export cleans up after it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["savedmodel"]


def test_cli_export_and_errors(run, tmp_path, capsys):
    assert main(["export", str(run), "--out", str(tmp_path / "x")]) == 0
    printed = capsys.readouterr().out
    assert "verified with tf.saved_model.load" in printed and "two calls identical" in printed
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "no model.keras" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes(b"not a zip")
    assert main(["export", str(broken)]) == 2
    assert "cannot load the trained model" in capsys.readouterr().err


def test_default_destination_is_inside_the_run(run):
    manifest = export_run(run, format="keras")
    assert Path(manifest["path"]) == run / "export" / "keras" and (run / "export" / "keras" / "model.keras").is_file()


def test_export_never_replaces_a_users_folder(run, tmp_path, capsys):
    """Only an earlier export (a folder with export.json) or an empty folder is replaced."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "important.txt").write_text("x")
    assert main(["export", str(run), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "not a cnnbuild export (important.txt)" in err and "nothing there was touched" in err
    assert (mine / "important.txt").read_text() == "x" and sorted(p.name for p in mine.iterdir()) == ["important.txt"]
    # the run's own parent folder, or the run itself: refused, the run intact
    before = sorted(p.name for p in run.iterdir())
    for out in (run.parent, run):
        assert main(["export", str(run), "--out", str(out)]) == 2
        assert "holds the run" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before
    # a file, not a folder
    (tmp_path / "file").write_text("y")
    assert main(["export", str(run), "--out", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err and (tmp_path / "file").read_text() == "y"
    # an earlier export and an empty folder are replaced
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "exported", tmp_path / "exported", tmp_path / "empty"):
        assert main(["export", str(run), "--out", str(out), "--format", "keras"]) == 0
        assert (out / "export.json").is_file()


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: a real full disk, not a simulated error (needs root, as here and in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_named_and_the_previous_export_kept(run, small_disk, capsys):
    out = small_disk / "savedmodel"
    assert main(["export", str(run), "--out", str(out)]) == 0
    capsys.readouterr()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    filler = small_disk / "filler"
    with open(filler, "wb") as f:       # fill the disk up to the last few kilobytes
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    assert main(["export", str(run), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "is full (no space left on device)" in err and "previous export" in err and "intact" in err, err
    assert "internal error" not in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in small_disk.iterdir() if p.name.startswith(".")] == []   # no partial folder left


def test_refusals_that_need_no_tensorflow_come_before_it(tmp_path):
    """A missing run, an unfinished one and a destination holding the user's files are refused
    before TensorFlow is imported (the model file is never read for them)."""
    finished, unfinished, users = tmp_path / "run", tmp_path / "unfinished", tmp_path / "photos"
    for folder in (finished, unfinished, users):
        folder.mkdir()
    (finished / "model.keras").write_bytes(b"never read")
    (users / "holiday.jpg").write_bytes(b"the user's")
    cases = [([str(tmp_path / "nowhere")], "no such run folder"),
             ([str(unfinished)], "not a finished run folder"),
             ([str(finished), "--out", str(users)], "not a cnnbuild export")]
    for argv, said in cases:
        program = ("import sys; from cnnbuild.cli import main; code = main(['export', *sys.argv[1:]]); "
                   "print('tensorflow' in sys.modules); sys.exit(code)")
        done = subprocess.run([sys.executable, "-c", program, *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert done.stdout.split() == ["False"], f"TensorFlow was imported before refusing {argv}"
    assert (users / "holiday.jpg").read_bytes() == b"the user's"

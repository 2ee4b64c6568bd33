"""Untrusted SavedModels: predict, evaluate and sample run only graphs of inference ops.

Each hostile model here is a real SavedModel written by tf.saved_model.save, whose serving
function really does its harm when run (the --trust-model cases show the file appearing);
without the flag the refusal names the op and nothing is written. Our own exports (a
classifier's, a GAN generator's) pass the same allowlist."""
import json
from pathlib import Path

import pytest

from cnnbuild.cli import main
from run_helpers import make_run, write_digit_pngs


def hostile_classifier(folder, target, how="write_file"):
    """A SavedModel with cnnbuild's serving signature (uint8 images → probabilities, class_id)
    whose function writes `target` (tf.io.write_file) or calls Python (tf.py_function)."""
    import tensorflow as tf

    class Hostile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name="images")])
        def serve(self, images):
            if how == "write_file":
                tf.io.write_file(str(target), "written by a hostile model")
            else:
                tf.py_function(lambda: open(str(target), "w").close() or 0, [], tf.int32)
            batch = tf.shape(images)[0]
            probabilities = tf.fill([batch, 2], 0.5)
            return {"probabilities": probabilities, "class_id": tf.zeros([batch], tf.int64)}

    module = Hostile()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def dress_as_export(folder, classes=("a", "b"), **manifest):
    (folder / "classes.json").write_text(json.dumps(list(classes)))
    (folder / "export.json").write_text(json.dumps({
        "format": "savedmodel", "file": ".", "signature": "serving_default", "classes": list(classes),
        "input": {"name": "images", "dtype": "uint8", "shape": [None, None, None, None]}} | manifest))
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return [str(path) for path, _ in write_digit_pngs(tmp_path_factory.mktemp("digits"), count=2)]


@pytest.mark.parametrize("dressed", [False, True], ids=["bare", "dressed-as-export"])
def test_a_savedmodel_that_writes_a_file_is_refused_and_writes_nothing(tmp_path, images, capsys, dressed):
    target = tmp_path / "pwned.txt"
    folder = hostile_classifier(tmp_path / "model", target)
    if dressed:
        dress_as_export(folder)
    assert main(["predict", str(folder), *images]) == 2
    err = capsys.readouterr().err
    assert "WriteFile" in err and "--trust-model" in err and "nothing was loaded or run" in err, err
    assert "Traceback" not in err
    assert not target.exists()
    # the flag says the user trusts it: then it runs, and the harm is real
    assert main(["predict", str(folder), *images, "--trust-model"]) == 0
    assert target.read_text() == "written by a hostile model"


def test_a_py_function_is_refused(tmp_path, images, capsys):
    target = tmp_path / "pwned.txt"
    folder = dress_as_export(hostile_classifier(tmp_path / "model", target, how="py_function"))
    assert main(["predict", str(folder), *images]) == 2
    err = capsys.readouterr().err
    assert "EagerPyFunc" in err and "--trust-model" in err, err
    assert not target.exists()


def test_a_run_folder_with_a_forged_fingerprint_is_refused(tmp_path, images, capsys):
    """The export's source_fingerprint matches the run (anyone can recompute it), so predict
    RUN picks the export: the allowlist still refuses it."""
    from cnnbuild.serve.export import fingerprint
    run = make_run(tmp_path / "run", epochs=1)
    target = tmp_path / "pwned.txt"
    export = hostile_classifier(run / "export" / "savedmodel", target)
    dress_as_export(export, classes=[str(i) for i in range(10)], source_fingerprint=fingerprint(run))
    assert main(["predict", str(run), *images]) == 2
    err = capsys.readouterr().err
    assert "WriteFile" in err and str(export) in err, err
    assert not target.exists()


def test_a_hostile_generator_export_is_refused_by_sample_and_evaluate(tmp_path, capsys):
    import tensorflow as tf
    target = tmp_path / "pwned.txt"

    class Generator(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 12], tf.float32, name="noise")])
        def serve(self, noise):
            tf.io.write_file(str(target), "written by a hostile generator")
            return {"images": tf.zeros([tf.shape(noise)[0], 8, 8, 1], tf.uint8)}

    folder = tmp_path / "gan"
    module = Generator()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    (folder / "gan.json").write_text(json.dumps({
        "name": "g", "noise": 12, "conditional": False, "classes": [], "image_shape": [8, 8, 1],
        "pixel_range": [-1, 1], "loss": "non_saturating"}))
    (folder / "export.json").write_text(json.dumps({"format": "savedmodel", "kind": "gan_generator"}))
    assert main(["sample", str(folder), "--n", "4", "--out", str(tmp_path / "grid.png")]) == 2
    err = capsys.readouterr().err
    assert "WriteFile" in err and "--trust-model" in err, err
    assert not target.exists() and not (tmp_path / "grid.png").exists()
    assert main(["sample", str(folder), "--n", "4", "--out", str(tmp_path / "grid.png"), "--trust-model"]) == 0
    assert target.exists()


def test_our_own_exports_hold_only_inference_ops(tmp_path):
    """Every format that is a SavedModel: a classifier's export and a GAN generator's."""
    from cnnbuild.serve.allowlist import foreign_ops
    from test_gan_serve import small_generator, write_gan_run
    run = make_run(tmp_path / "run", epochs=1)
    assert main(["export", str(run)]) == 0
    gan = write_gan_run(tmp_path / "gan", small_generator(classes=3), classes=["a", "b", "c"])
    assert main(["export", str(gan)]) == 0
    for folder in (run / "export" / "savedmodel", gan / "export" / "savedmodel"):
        assert foreign_ops(folder / "saved_model.pb") == {}


def test_saver_ops_outside_the_saver_are_refused(tmp_path):
    """tf.train.Checkpoint.write inside a serving function puts SaveV2 in a function that the
    saver does not own: refused, though the same op is allowed in the saver's own functions."""
    import tensorflow as tf
    from cnnbuild.serve.allowlist import foreign_ops

    class Saver(tf.Module):
        def __init__(self):
            self.v = tf.Variable(1.0)

        @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
        def serve(self, x):
            tf.raw_ops.SaveV2(prefix=str(tmp_path / "ckpt"), tensor_names=["v"], shape_and_slices=[""],
                              tensors=[self.v.read_value()])
            return x * self.v

    module = Saver()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    found = foreign_ops(tmp_path / "m" / "saved_model.pb")
    assert set(found) == {"SaveV2"}, found


# ── links out of run folders and exports ───────────────────────────────────────────────────

SECRET = "root:x:0:0:SECRET-LINE-NOT-TO-BE-SHOWN\n"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("trained") / "run", epochs=1)
    assert main(["export", str(run)]) == 0
    return run


def copied_run(trained_run, tmp_path):
    import shutil
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


@pytest.mark.parametrize("name", ["spec.yaml", "classes.json", "model.keras"])
def test_a_run_file_linked_out_of_the_folder_is_refused_unread(trained_run, tmp_path, capsys, name):
    run = copied_run(trained_run, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = outside / name
    if name == "model.keras":
        (run / name).rename(target)        # the real model, moved out: still refused
    else:
        target.write_text(SECRET)
        (run / name).unlink()
    (run / name).symlink_to(target)
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / name}: a symbolic link to {target}, outside {run}" in err, err
    assert "SECRET-LINE" not in err and "Traceback" not in err


def test_an_export_folder_linked_out_of_the_run_is_refused(trained_run, tmp_path, images, capsys):
    import shutil
    run = copied_run(trained_run, tmp_path)
    shutil.move(run / "export" / "savedmodel", tmp_path / "moved")
    (run / "export" / "savedmodel").symlink_to(tmp_path / "moved")
    assert main(["predict", str(run), *images]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'export' / 'savedmodel'}: a symbolic link to {tmp_path / 'moved'}" in err, err


@pytest.mark.parametrize("name", ["classes.json", "export.json", "variables"])
def test_an_export_holding_a_link_out_is_refused(trained_run, tmp_path, images, capsys, name):
    import shutil
    export = Path(shutil.copytree(trained_run / "export" / "savedmodel", tmp_path / "export"))
    target = tmp_path / f"outside-{name}"
    shutil.move(export / name, target)
    (export / name).symlink_to(target)
    assert main(["predict", str(export), *images]) == 2
    err = capsys.readouterr().err
    assert f"{export / name}: a symbolic link to {target}" in err, err
    # a link inside the folder that stays inside is fine
    (export / name).unlink()
    shutil.move(target, export / f"real-{name}")
    (export / name).symlink_to(f"real-{name}")
    assert main(["predict", str(export), *images]) == 0, capsys.readouterr().err

"""What a user does with a trained GAN: `cnnbuild sample`, `cnnbuild export GAN_RUN`,
`cnnbuild evaluate GAN_RUN --classifier`.

The run folders are written by the run-folder contract (gan.json + generator.keras) with
real Keras generators: small untrained ones for the round trips (the numbers must survive
sampling and export exactly, whatever they are), and for the quality figure two references
from outside the GAN code: a "generator" that returns real held-out scikit-learn digits of
the class it is asked for (a perfect conditional GAN: it must score ≥ 90 % with a
cnnbuild-trained classifier) and one that always returns the same digit (total mode
collapse: 10 % conditional accuracy, one class, zero entropy)."""
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from cnnbuild.cli import main
from run_helpers import DIGIT_CLASSES, SMALL_SPEC, digits, train_model

NOISE = 12
HELD_OUT = 1400          # the classifier trains on 1,400 of the digits; the lookup generator shows the other 397


def shuffled_digits():
    """The digits in one fixed random order (the file's own order groups writers)."""
    images, labels = digits()
    order = np.random.default_rng(0).permutation(len(labels))
    return images[order], labels[order]


# ── run folders ────────────────────────────────────────────────────────────────────────────

def write_gan_run(folder, generator, classes=(), image_shape=(8, 8, 1), pixel_range=(-1, 1), noise=NOISE):
    folder.mkdir(parents=True, exist_ok=True)
    generator.save(folder / "generator.keras")
    (folder / "gan.json").write_text(json.dumps({
        "name": folder.name, "noise": noise, "conditional": bool(classes), "classes": list(classes),
        "image_shape": list(image_shape), "pixel_range": list(pixel_range), "loss": "non_saturating"}))
    return folder


def inputs(conditional, noise=NOISE):
    import keras
    z = keras.Input((noise,), name="noise")
    return (z, keras.Input((), dtype="int32", name="label")) if conditional else (z, None)


def small_generator(classes=0, seed=0, shape=(8, 8, 1)):
    """An untrained DCGAN-like generator as contract 3 builds one: label one-hot joined to the
    noise inside the model, dense → reshape → batchnorm → transposed convolution → tanh."""
    import keras
    keras.utils.set_random_seed(seed)
    z, label = inputs(bool(classes))
    x = keras.layers.Concatenate()([z, keras.layers.CategoryEncoding(classes, output_mode="one_hot")(label)]) \
        if classes else z
    x = keras.layers.Dense(shape[0] // 2 * shape[1] // 2 * 8, activation="relu")(x)
    x = keras.layers.Reshape((shape[0] // 2, shape[1] // 2, 8))(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2DTranspose(shape[2], 3, strides=2, padding="same", activation="tanh")(x)
    return keras.Model([z, label] if classes else z, x)


def lookup_generator(images, labels, classes, per_class=20):
    """Real digits of the class asked for: a table of `per_class` held-out digits per class
    (Embedding by label), one picked by the noise (a softmax of 1000 · z[:per_class], one-hot
    in effect). Pixels in [-1, 1]: the image u/127.5 − 1."""
    import keras
    table = np.stack([images[labels == k][:per_class].reshape(per_class, -1) for k in range(classes)])
    table = (table.astype(np.float32) / 127.5 - 1).reshape(classes, -1)
    z, label = inputs(conditional=True)
    pick = keras.layers.Dense(per_class, use_bias=False, trainable=False,
                              kernel_initializer=keras.initializers.Constant(np.eye(NOISE, per_class) * 1000))(z)
    pick = keras.layers.Softmax()(pick)
    rows = keras.layers.Embedding(classes, table.shape[1], embeddings_initializer=keras.initializers.Constant(table),
                                  trainable=False)(label)
    rows = keras.layers.Reshape((per_class, 64))(rows)
    x = keras.layers.Dot(axes=(1, 1))([pick, rows])
    return keras.Model([z, label], keras.layers.Reshape((8, 8, 1))(x))


def uniform_lookup_generator(images, count=200):
    """Unconditional: one of `count` real digits (all classes), picked by the noise."""
    import keras
    table = images[:count].reshape(count, -1).astype(np.float32) / 127.5 - 1
    z, _ = inputs(conditional=False)
    # the noise is only NOISE long: pick by 1000 · (z @ P) for a fixed random projection P
    projection = np.random.default_rng(7).standard_normal((NOISE, count)) * 1000
    pick = keras.layers.Dense(count, use_bias=False, kernel_initializer=keras.initializers.Constant(projection))(z)
    pick = keras.layers.Softmax()(pick)
    x = keras.layers.Dense(64, use_bias=False, kernel_initializer=keras.initializers.Constant(table))(pick)
    return keras.Model(z, keras.layers.Reshape((8, 8, 1))(x))


def same_digit_generator(image, classes=0):
    """Total mode collapse: the same digit whatever the noise and the label."""
    import keras
    z, label = inputs(bool(classes))
    x = keras.layers.Dense(64, kernel_initializer="zeros",
                           bias_initializer=keras.initializers.Constant(image.ravel() / 127.5 - 1))(z)
    if classes:    # the label is read (a functional model uses every input) and adds nothing
        x = keras.layers.Add()([x, keras.layers.Embedding(classes, 64, embeddings_initializer="zeros")(label)])
    return keras.Model([z, label] if classes else z, keras.layers.Reshape((8, 8, 1))(x))


def expected_uint8(generator_path, noise, labels=None, pixel_range=(-1, 1)):
    """The contract's pixel → uint8, computed here from generator.keras loaded by Keras itself."""
    import keras
    model = keras.saving.load_model(generator_path, compile=False)
    x = model({"noise": noise, "label": labels} if labels is not None else noise, training=False)
    lo, hi = pixel_range
    return np.clip(np.round((np.asarray(x, np.float64) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def cells(path, count, columns, height=8, width=8):
    """Read a grid PNG back: views/grid.py enlarges 8-pixel cells 4× (to ≥ 32) with 4-pixel gaps."""
    scale = math.ceil(32 / height)
    picture = np.asarray(Image.open(path))
    rows = math.ceil(count / columns)
    assert picture.shape[:2] == (rows * (height + 1) * scale - scale, columns * (width + 1) * scale - scale)
    out = []
    for i in range(count):
        r, c = divmod(i, columns)
        y, x = r * (height + 1) * scale, c * (width + 1) * scale
        cell = picture[y:y + height * scale, x:x + width * scale]
        assert (cell == cell[::scale, ::scale].repeat(scale, 0).repeat(scale, 1)).all()   # a whole-factor enlargement
        out.append(cell[::scale, ::scale])
    return np.stack(out)[..., None] if picture.ndim == 2 else np.stack(out)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    return write_gan_run(tmp_path_factory.mktemp("gan") / "cond", small_generator(classes=4),
                         classes=["cat", "dog", "owl", "fox"])


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A digits classifier built and trained by cnnbuild (the small spec, its preprocessing) on
    1,400 digits; a run folder with model.keras, classes.json, spec.yaml."""
    from cnnbuild import build_model, load_spec, runfolder
    folder = tmp_path_factory.mktemp("classifier") / "run"
    folder.mkdir()
    (folder / "spec.yaml").write_text(SMALL_SPEC)
    model = build_model(load_spec(folder / "spec.yaml"))
    images, labels = shuffled_digits()
    train_model(model, images[:HELD_OUT], labels[:HELD_OUT], epochs=6, batch_size=32)
    runfolder.write_json(folder / "classes.json", DIGIT_CLASSES)
    model.save(folder / "model.keras")
    return folder


# ── sample ─────────────────────────────────────────────────────────────────────────────────

def test_sample_grid_holds_the_generators_pictures(conditional_run, tmp_path, capsys):
    """Without --class: ⌈20/4⌉ = 5 samples of each of the 4 classes, one row per class."""
    out = tmp_path / "grid.png"
    assert main(["sample", str(conditional_run), "--n", "20", "--seed", "3", "--out", str(out)]) == 0
    assert "sampled 20 images (4 classes, one row each" in capsys.readouterr().out
    noise = np.random.default_rng(3).standard_normal((20, NOISE)).astype(np.float32)
    labels = np.repeat(np.arange(4), 5).astype(np.int32)
    expected = expected_uint8(conditional_run / "generator.keras", noise, labels)
    assert np.array_equal(cells(out, 20, columns=5), expected)
    assert main(["sample", str(conditional_run), "--n", "20", "--seed", "3"]) == 0     # default: RUN/sample.png
    assert (conditional_run / "sample.png").read_bytes() == out.read_bytes()


def test_sample_folder_of_files_and_class(conditional_run, tmp_path):
    for asked in ("owl", "2"):       # by name and by index: the same class
        folder = tmp_path / asked
        assert main(["sample", str(conditional_run), "--n", "3", "--class", asked, "--out", f"{folder}/"]) == 0
        assert sorted(p.name for p in folder.iterdir()) == ["0000_class2.png", "0001_class2.png", "0002_class2.png"]
        noise = np.random.default_rng(0).standard_normal((3, NOISE)).astype(np.float32)
        expected = expected_uint8(conditional_run / "generator.keras", noise, np.full(3, 2, np.int32))
        for i, path in enumerate(sorted(folder.iterdir())):
            assert np.array_equal(np.asarray(Image.open(path))[..., None], expected[i])


def test_sample_refusals_are_one_line(conditional_run, tmp_path, capsys):
    unconditional = write_gan_run(tmp_path / "plain", small_generator(classes=0))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "gan.json").write_text((conditional_run / "gan.json").read_text())
    classifier_run = tmp_path / "clf"
    classifier_run.mkdir()
    (classifier_run / "model.keras").write_bytes(b"")
    diverged = write_gan_run(tmp_path / "nan", same_digit_generator(np.full(64, np.nan)))
    cases = [([str(unconditional), "--class", "1"], "unconditional GAN"),
             ([str(diverged)], "the generator outputs NaN or infinite pixels: its training diverged"),
             ([str(conditional_run), "--class", "4"], r"out of range; cond has 4 classes, 0 … 3 \(cat, dog, owl, fox\)"),
             ([str(conditional_run), "--class", "eagle"], "no class of that name"),
             ([str(tmp_path / "nowhere")], "no such GAN run folder"),
             ([str(unfinished)], "not a finished GAN run"),
             ([str(classifier_run)], "a classifier run or export, not a GAN run"),
             ([str(conditional_run), "--out", str(tmp_path / "grid.jpg")], "name it NAME.png")]
    for argv, message in cases:
        assert main(["sample", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert re.search(message, err), err
    assert not (tmp_path / "grid.jpg").exists()


# ── export ─────────────────────────────────────────────────────────────────────────────────

def test_export_round_trip_with_tensorflow_alone(conditional_run, tmp_path, capsys):
    import tensorflow as tf
    assert main(["export", str(conditional_run)]) == 0
    printed = capsys.readouterr().out
    assert "verified with tf.saved_model.load" in printed and "label int32 [batch]" in printed
    folder = conditional_run / "export" / "savedmodel"
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["kind"] == "gan_generator" and manifest["classes"] == ["cat", "dog", "owl", "fox"]
    assert manifest["verified"]["max_abs_diff"] <= 1
    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
    noise = np.random.default_rng(99).standard_normal((9, NOISE)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 3, 2, 1, 0, 2], np.int32)
    images = serve(noise=tf.constant(noise), label=tf.constant(labels))["images"]
    assert images.dtype == tf.uint8 and images.shape == (9, 8, 8, 1)
    expected = expected_uint8(conditional_run / "generator.keras", noise, labels)
    assert np.abs(images.numpy().astype(int) - expected).max() <= 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="label above 3"):
        serve(noise=tf.constant(noise[:1]), label=tf.constant([4], tf.int32))
    # the export samples as the run does
    assert main(["sample", str(folder), "--n", "8", "--out", str(tmp_path / "a.png")]) == 0
    assert main(["sample", str(conditional_run), "--n", "8", "--out", str(tmp_path / "b.png")]) == 0
    assert np.abs(cells(tmp_path / "a.png", 8, 2).astype(int) - cells(tmp_path / "b.png", 8, 2)).max() <= 1
    # a classifier command on the generator export says what it is
    assert main(["predict", str(folder), str(tmp_path / "a.png")]) == 2
    assert "a GAN run or export, not a classifier run; sample it with cnnbuild sample" in capsys.readouterr().err


def test_export_unconditional_rgb_and_refusals(tmp_path, capsys):
    import tensorflow as tf
    run = write_gan_run(tmp_path / "rgb", small_generator(shape=(8, 6, 3), seed=4), image_shape=(8, 6, 3))
    out = tmp_path / "exported"
    assert main(["export", str(run), "--out", str(out)]) == 0
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == ["noise"]
    noise = np.random.default_rng(5).standard_normal((4, NOISE)).astype(np.float32)
    images = serve(noise=tf.constant(noise))["images"].numpy()
    assert np.abs(images.astype(int) - expected_uint8(run / "generator.keras", noise)).max() <= 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    capsys.readouterr()
    for argv, message in (([str(run), "--out", str(tmp_path / "mine")], "not a cnnbuild export"),
                          ([str(run), "--format", "onnx"], "exported as a SavedModel only"),
                          ([str(out)], "already a generator export")):
        assert main(["export", *argv]) == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


# ── evaluate --classifier ──────────────────────────────────────────────────────────────────

def test_real_digits_score_high_and_one_digit_scores_chance(classifier, tmp_path, capsys):
    images, labels = shuffled_digits()
    lookup = write_gan_run(tmp_path / "lookup", lookup_generator(images[HELD_OUT:], labels[HELD_OUT:], 10),
                           classes=DIGIT_CLASSES)
    assert main(["evaluate", str(lookup), "--classifier", str(classifier), "--n", "500", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["conditional"] and figures["samples"] == 500 and figures["matched_by"] == "names"
    assert figures["conditional_accuracy"] >= 0.9
    assert all(c["asked"] == 50 for c in figures["per_class"])
    counts = np.array(figures["confusion_matrix"]["counts"])
    assert figures["conditional_accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
    assert (lookup / "sample_quality.json").is_file() and (lookup / "sample_quality.png").is_file()

    seven = images[labels == 7][0]
    collapsed = write_gan_run(tmp_path / "collapsed", same_digit_generator(seven, 10), classes=[str(k) for k in range(10)])
    assert main(["evaluate", str(collapsed), "--classifier", str(classifier), "--n", "200"]) == 0
    printed = capsys.readouterr().out
    figures = json.loads((collapsed / "sample_quality.json").read_text())
    assert figures["matched_by"] == "index"           # named 0 … 9 here, zero … nine by the classifier
    assert figures["conditional_accuracy"] == pytest.approx(0.1)      # only the 20 asked for a seven
    assert figures["coverage"]["classes_appearing"] == 1 and figures["coverage"]["entropy_bits"] == 0
    assert "classified as the class asked for: 0.1000 (20 of 200; chance 0.100)" in printed


def test_unconditional_coverage_with_an_exported_classifier(classifier, tmp_path, capsys):
    images, labels = shuffled_digits()
    assert main(["export", str(classifier), "--out", str(tmp_path / "clf")]) == 0
    capsys.readouterr()
    varied = write_gan_run(tmp_path / "varied", uniform_lookup_generator(images[HELD_OUT:]))
    assert main(["evaluate", str(varied), "--classifier", str(tmp_path / "clf"), "--n", "600", "--json"]) == 0
    coverage = json.loads(capsys.readouterr().out)["coverage"]
    counts = np.array(list(coverage["counts"].values()))
    shares = counts[counts > 0] / counts.sum()
    assert coverage["entropy_bits"] == pytest.approx(-(shares * np.log2(shares)).sum())
    assert coverage["fraction"] == pytest.approx(coverage["entropy_bits"] / np.log2(10))
    assert coverage["classes_appearing"] == 10 and coverage["fraction"] > 0.9
    collapsed = write_gan_run(tmp_path / "one", same_digit_generator(images[0]))
    assert main(["evaluate", str(collapsed), "--classifier", str(classifier), "--n", "50"]) == 0
    assert "1 of 10 classes appear" in capsys.readouterr().out
    for argv, message in (([str(collapsed)], "a GAN run; score its samples with a classifier"),
                          ([str(classifier), "--classifier", str(classifier)], "is not a GAN run"),
                          ([str(collapsed), "--classifier", str(varied)], "a GAN run (it has gan.json), not a classifier"),
                          ([str(collapsed), "--classifier", str(tmp_path / "none")], "no such run or export folder")):
        assert main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


# ── a real trained run (GAN-TRAIN's `gan_run` fixture: tiny conditional DCGAN, 2 epochs) ───

def test_a_trained_run_samples_exports_and_evaluates(gan_run, classifier, tmp_path, capsys):
    import tensorflow as tf
    info = json.loads((gan_run / "gan.json").read_text())
    noise_size, height = info["noise"], info["image_shape"][0]
    assert main(["sample", str(gan_run), "--class", "3", "--n", "6", "--out", str(tmp_path / "threes.png")]) == 0
    noise = np.random.default_rng(0).standard_normal((6, noise_size)).astype(np.float32)
    expected = expected_uint8(gan_run / "generator.keras", noise, np.full(6, 3, np.int32), info["pixel_range"])
    assert np.array_equal(cells(tmp_path / "threes.png", 6, columns=3, height=height, width=info["image_shape"][1]),
                          expected)
    assert main(["export", str(gan_run), "--out", str(tmp_path / "generator")]) == 0
    serve = tf.saved_model.load(str(tmp_path / "generator")).signatures["serving_default"]
    images = serve(noise=tf.constant(noise), label=tf.constant(np.full(6, 3, np.int32)))["images"].numpy()
    assert np.abs(images.astype(int) - expected).max() <= 1
    capsys.readouterr()
    assert main(["evaluate", str(gan_run), "--classifier", str(classifier), "--n", "100", "--out",
                 str(tmp_path / "quality.png"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["samples"] == 100 and figures["matched_by"] == "index"     # classes 0 … 9 and zero … nine
    assert 0 <= figures["conditional_accuracy"] <= 1 and (tmp_path / "quality.json").is_file()

"""predict: real PNG (and jpg / bmp / gif) files the test writes, through the export only;
bad files get an error each and do not stop the others."""
import json

import numpy as np
import pytest
from PIL import Image

from cnnbuild.cli import main
from cnnbuild.serve.export import export_run
from run_helpers import DIGIT_CLASSES, make_run, write_digit_pngs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("predict") / "run")


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """Twelve real digits as 40×40 PNG files, larger than the 16×16 input, as a user's scans would be."""
    return write_digit_pngs(tmp_path_factory.mktemp("pngs"), count=12, size=40)


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_predicts_png_files_from_an_export(run, pngs, tmp_path, capsys):
    export_run(run, tmp_path / "export")
    assert main(["predict", str(tmp_path / "export"), *map(str, (p for p, _ in pngs)), "--json", "--top", "3"]) == 0
    results = _json(capsys)
    assert [r["file"] for r in results] == [str(p) for p, _ in pngs]
    for result in results:
        assert set(result) == {"file", "class", "probability", "top"}
        assert len(result["top"]) == 3 and result["top"][0] == {"class": result["class"], "probability": result["probability"]}
        assert result["class"] in DIGIT_CLASSES and 0 < result["probability"] <= 1
        assert result["top"][0]["probability"] >= result["top"][1]["probability"] >= result["top"][2]["probability"]
    right = sum(r["class"] == DIGIT_CLASSES[label] for r, (_, label) in zip(results, pngs))
    assert right >= 9, results        # a model trained for two epochs reads most digits


def test_text_output_and_run_folder(run, pngs, capsys, tmp_path):
    fresh = make_run(tmp_path / "fresh", epochs=1)
    assert main(["predict", str(fresh), str(pngs[0][0])]) == 0
    captured = capsys.readouterr()
    assert "exporting to a temporary folder" in captured.err
    assert captured.out.startswith(f"{pngs[0][0]}: ") and len(captured.out.strip().split(", ")) == 1
    assert not (fresh / "export").exists()                 # the temporary export is gone
    export_run(fresh)                                      # with a current export, predict uses it
    assert main(["predict", str(fresh), str(pngs[0][0]), "--top", "2"]) == 0
    captured = capsys.readouterr()
    assert "temporary" not in captured.err and len(captured.out.strip().split(", ")) == 2


def test_bad_files_get_an_error_each(run, pngs, tmp_path, capsys):
    good = str(pngs[1][0])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    whole = pngs[2][0].read_bytes()
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "nothing").mkdir()     # a folder without images (one with images is expanded: test_everyday.py)
    bad = [tmp_path / "empty.png", tmp_path / "text.png", tmp_path / "truncated.png", tmp_path / "missing.png",
           tmp_path / "nothing"]
    assert main(["predict", str(run), good, *map(str, bad), "--json"]) == 2
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert len(results) == 6 and results[0]["class"] in DIGIT_CLASSES and "error" not in results[0]
    for result in results[1:]:
        assert result["class"] is None and result["top"] == [] and result["error"].startswith(result["file"])
    for expected in ("the file is empty", "Unknown image file format", "Invalid PNG data", "no such file", "is a folder"):
        assert expected in captured.err
    assert "5 of 6 files could not be read" in captured.err
    assert "Traceback" not in captured.err


def test_a_corrupt_png_reads_the_same_in_training_and_predict(run, pngs, tmp_path, capsys):
    """A file TensorFlow cannot decode: predict names it without TensorFlow's op decorations
    ('{{function_node __wrapped__DecodeImage…}}', '[Op:DecodeImage] name:'); training, whose
    up-front check reads headers only (issue 8), skips this header-intact file while
    decoding and counts it in metrics.json."""
    for label in ("a", "b"):
        write_digit_pngs(tmp_path / "data" / label, count=3)
    whole = pngs[0][0].read_bytes()
    corrupt = tmp_path / "data" / "b" / "corrupt.png"
    corrupt.write_bytes(whole[: len(whole) // 2])
    said = f"{corrupt}: not a readable png/jpg/bmp/gif image: Invalid PNG data, size {len(whole) // 2}"
    spec = tmp_path / "two.yaml"
    spec.write_text("name: two\ninput: [8, 8, 1]\nlayers: [flatten, {dense: {units: 2, activation: softmax}}]\n")
    assert main(["train", str(spec), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "trained")]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "trained" / "metrics.json").read_text())["corrupt_skipped_per_epoch"] == 1
    export_run(run, tmp_path / "export")
    assert main(["predict", str(tmp_path / "export"), str(corrupt)]) == 2
    assert capsys.readouterr().err == f"error: {said}\n1 of 1 file could not be read\n"


def test_other_formats_and_channels(run, pngs, tmp_path, capsys):
    """jpg, bmp and gif, RGB and RGBA files, for a grayscale model: each predicted like its PNG."""
    picture = Image.open(pngs[3][0])
    files = []
    for name, image in (("a.jpg", picture.convert("RGB")), ("b.bmp", picture), ("c.gif", picture),
                        ("d.png", picture.convert("RGBA")), ("e.png", picture.convert("RGB"))):
        image.save(tmp_path / name)
        files.append(str(tmp_path / name))
    assert main(["predict", str(run), str(pngs[3][0]), *files, "--json"]) == 0
    results = _json(capsys)
    assert {r["class"] for r in results} == {results[0]["class"]}


@pytest.mark.parametrize("format", ["tflite", "onnx", "keras"])
def test_predict_with_other_export_formats(run, pngs, tmp_path, capsys, format):
    if format == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("tf2onnx")
    export_run(run, tmp_path / "saved")
    export_run(run, tmp_path / format, format)
    rgb = tmp_path / "rgb.png"
    Image.open(pngs[4][0]).convert("RGB").save(rgb)
    files = [str(p) for p, _ in pngs[:4]] + [str(rgb)]
    assert main(["predict", str(tmp_path / "saved"), *files, "--json"]) == 0
    expected = _json(capsys)
    assert main(["predict", str(tmp_path / format), *files, "--json"]) == 0
    got = _json(capsys)
    assert [r["class"] for r in got] == [r["class"] for r in expected]
    # TFLite takes fixed channels, so predict converts RGB → gray itself (rounded to whole pixel values)
    tolerance = 2e-3 if format == "tflite" else 1e-5
    np.testing.assert_allclose([r["probability"] for r in got], [r["probability"] for r in expected], atol=tolerance)


def test_usage_errors(run, pngs, capsys, tmp_path):
    assert main(["predict", str(run), str(pngs[0][0]), "--top", "0"]) == 2
    assert "--top 0" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nowhere"), str(pngs[0][0])]) == 2
    assert "no such export or run folder" in capsys.readouterr().err
    (tmp_path / "folder").mkdir()
    assert main(["predict", str(tmp_path / "folder"), str(pngs[0][0])]) == 2
    assert "not an export folder" in capsys.readouterr().err


def test_a_model_file_is_read_as_its_folder_says(run, pngs, tmp_path, capsys):
    """A run's model.keras means the run; a file in an export folder must be the file its
    export.json names (a renamed copy is refused, not silently swapped for model.keras)."""
    image = str(pngs[0][0])
    assert main(["predict", str(run / "model.keras"), image]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: ")
    export_run(run, tmp_path / "keras", "keras")
    assert main(["predict", str(tmp_path / "keras" / "model.keras"), image]) == 0
    capsys.readouterr()
    (tmp_path / "keras" / "model.keras").rename(tmp_path / "keras" / "renamed.keras")
    assert main(["predict", str(tmp_path / "keras" / "renamed.keras"), image]) == 2
    err = capsys.readouterr().err
    assert "is model.keras (its export.json says so), not renamed.keras" in err and "internal error" not in err
    loose = tmp_path / "loose.keras"
    (tmp_path / "keras" / "renamed.keras").rename(loose)
    assert main(["predict", str(loose), image]) == 2
    assert "not inside an export folder" in capsys.readouterr().err


def test_an_image_too_large_to_decode_is_refused_from_its_header(run, pngs, tmp_path, capsys):
    """A 20000×20000 single-colour PNG is small on disk; predict refuses it before decoding
    (which would take gigabytes) and still predicts the other files."""
    huge = tmp_path / "huge.png"
    Image.new("L", (20000, 20000), 255).save(huge)
    assert huge.stat().st_size < 2_000_000
    assert main(["predict", str(run), str(huge), str(pngs[0][0])]) == 2
    captured = capsys.readouterr()
    assert f"{huge}: " in captured.err and "megapixels" in captured.err and "resize it first" in captured.err
    assert captured.out.startswith(f"{pngs[0][0]}: ")


# specs/unet.yaml in miniature: an encoder level, a bottleneck, upsampling and the skip concat
UNET_SPEC = """\
name: tiny_unet
input: [32, 32, 1]
data: {source: shapes, samples: 400}
train: {epochs: 3, seed: 0}
layers:
  - conv: {name: enc1, filters: 8, kernel: 3, padding: same, activation: relu}
  - max_pool: {name: pool1, size: 2}
  - conv: {name: bottleneck, filters: 16, kernel: 3, padding: same, activation: relu}
  - upsample: 2
  - concat: {with: [enc1]}
  - conv: {filters: 8, kernel: 3, padding: same, activation: relu}
  - conv: {filters: 4, kernel: 1, activation: softmax}
"""


def test_a_unet_run_predicts_a_mask_and_an_overlay_per_image(tmp_path, capsys):
    spec = tmp_path / "unet.yaml"
    spec.write_text(UNET_SPEC)
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    picture = np.zeros((40, 48), np.uint8)          # not the training size: masks come back at the file's size
    picture[10:30, 12:32] = 255
    Image.fromarray(picture).save(tmp_path / "square.png")
    capsys.readouterr()
    out = tmp_path / "masks"
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "square.png"), "--json", "--out", str(out)]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["mask"] == str(out / "square.mask.png") and result["overlay"] == str(out / "square.overlay.png")
    mask = np.asarray(Image.open(result["mask"]))
    overlay = Image.open(result["overlay"])
    assert mask.shape == (40, 48) and mask.dtype == np.uint8 and overlay.size == (48, 40) and overlay.mode == "RGB"
    shares = {p["class"]: p["share"] for p in result["pixels"]}
    assert set(shares) <= set(json.loads((tmp_path / "run" / "classes.json").read_text()))
    assert abs(sum(shares.values()) - 1) < 1e-4
    # the same answer from Keras directly: model.keras on the picture resized to 32×32, argmax per pixel,
    # scaled back to 40×48 by nearest neighbour
    import keras
    import tensorflow as tf
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    x = tf.image.resize(tf.constant(picture[None, ..., None], tf.float32), (32, 32)) / 255.0
    expected = np.asarray(Image.fromarray(np.argmax(model(x)[0], -1).astype(np.uint8)).resize((48, 40), Image.NEAREST))
    assert (mask == expected).mean() > 0.99


def test_images_unlike_the_training_images_are_warned_about_once(tmp_path, capsys):
    """The digits are light strokes on black, 8×8, grayscale (scikit-learn's); a user's black
    ink on white, a large scan or an RGB file is named in one warning per kind of difference."""
    spec = tmp_path / "digits.yaml"
    spec.write_text("name: tiny_digits\ninput: [8, 8, 1]\ntrain: {epochs: 1}\nlayers:\n  - flatten\n"
                    "  - dense: {units: 10, activation: softmax}\n")
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    profile = json.loads((tmp_path / "run" / "data_profile.json").read_text())
    assert profile["polarity"] == "light on dark" and (profile["height"], profile["width"], profile["channels"]) == (8, 8, 1)
    from sklearn.datasets import load_digits
    digit = np.round(load_digits().images[0] * 255 / 16).astype(np.uint8)   # light on dark, as trained
    files = {"same.png": digit, "inverted.png": 255 - digit, "inverted2.png": 255 - digit,
             "large.png": np.kron(digit, np.ones((40, 40), np.uint8)), "colour.png": np.stack([digit] * 3, -1)}
    for name, pixels in files.items():
        Image.fromarray(pixels).save(tmp_path / name)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), *(str(tmp_path / n) for n in files)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, warnings
    polarity, = [w for w in warnings if "dark on light" in w]
    assert "inverted.png" in polarity and "inverted2.png" in polarity and "same.png" not in polarity
    size, = [w for w in warnings if "very different size" in w]
    assert "large.png" in size and "8×8" in size
    channels, = [w for w in warnings if "converted to grayscale" in w]
    assert "colour.png" in channels
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "same.png")]) == 0
    assert "warning" not in capsys.readouterr().err

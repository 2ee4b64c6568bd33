"""evaluate: accuracy, per-class precision and recall, confusion matrix (text and PNG), checked
against scikit-learn's metrics and against the validation accuracy `cnnbuild train` recorded;
and the user's whole path with the real `cnnbuild train`: spec → run → export → predict."""
import json

import numpy as np
import pytest
from PIL import Image

from cnnbuild.cli import main
from cnnbuild.serve.evaluate import evaluate_run
from run_helpers import DIGIT_CLASSES, SMALL_SPEC, digits, make_run, write_digit_pngs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real `cnnbuild train` run: two epochs of the small spec on the digits."""
    folder = tmp_path_factory.mktemp("evaluate")
    spec = folder / "small.yaml"
    spec.write_text(SMALL_SPEC + "train: {epochs: 2, seed: 3}\n", encoding="utf-8")
    assert main(["train", str(spec), "--out", str(folder / "run")]) == 0
    return folder / "run"


def test_user_path_spec_to_predictions(trained, tmp_path, capsys):
    """README's commands: train (fixture), evaluate, export, predict on the user's own PNGs."""
    assert main(["evaluate", str(trained)]) == 0
    printed = capsys.readouterr().out
    figures = json.loads((trained / "confusion_matrix.json").read_text())
    recorded = json.loads((trained / "metrics.json").read_text())
    assert figures["count"] == 359 and figures["unit"] == "images"       # the run's 20 % validation split
    assert figures["accuracy"] == pytest.approx(recorded["val_accuracy"], abs=1e-6)
    assert f"accuracy {figures['accuracy']:.4f}" in printed and "confusion matrix (rows: true class" in printed
    with Image.open(trained / "confusion_matrix.png") as picture:
        assert picture.format == "PNG" and picture.size[0] >= 500 and picture.size[1] >= 500
    assert main(["export", str(trained)]) == 0
    assert "verified with tf.saved_model.load" in capsys.readouterr().out
    files = write_digit_pngs(tmp_path, count=8, size=28)
    assert main(["predict", str(trained / "export" / "savedmodel"), *(str(p) for p, _ in files), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    names = json.loads((trained / "classes.json").read_text())
    assert len(results) == 8 and all(r["class"] in names for r in results)
    assert sum(r["class"] == names[label] for r, (_, label) in zip(results, files)) >= 5


def test_figures_match_scikit_learn(tmp_path, capsys):
    from sklearn.metrics import confusion_matrix, precision_score, recall_score

    import keras
    from cnnbuild.preprocess import preprocess
    run = make_run(tmp_path / "run", epochs=1)
    images, labels = digits()
    pick = np.random.default_rng(1).permutation(len(labels))[:500]
    np.savez(tmp_path / "held.npz", x=images[pick], y=labels[pick])
    result = evaluate_run(run, str(tmp_path / "held.npz"))
    model = keras.saving.load_model(run / "model.keras")
    predicted = model.predict(preprocess(images[pick], (16, 16, 1)), verbose=0).argmax(-1)
    assert np.array_equal(np.array(result.confusion), confusion_matrix(labels[pick], predicted, labels=range(10)))
    assert result.accuracy == pytest.approx((predicted == labels[pick]).mean())
    precision = precision_score(labels[pick], predicted, labels=range(10), average=None, zero_division=np.nan)
    recall = recall_score(labels[pick], predicted, labels=range(10), average=None, zero_division=np.nan)
    for k in range(10):
        for ours, theirs in ((result.precision(k), precision[k]), (result.recall(k), recall[k])):
            assert (ours is None and np.isnan(theirs)) or ours == pytest.approx(theirs)
    assert result.classes == DIGIT_CLASSES
    assert main(["evaluate", str(run), "--data", str(tmp_path / "held.npz"), "--out", str(tmp_path / "cm.png"),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["count"] == 500 and (tmp_path / "cm.png").is_file() and (tmp_path / "cm.json").is_file()


def test_clear_errors(tmp_path, capsys):
    run = make_run(tmp_path / "run", spec_text=SMALL_SPEC + "data: {validation_split: 0}\n", epochs=1)
    assert main(["evaluate", str(run)]) == 2
    assert "no validation data" in capsys.readouterr().err
    for name in ("cat", "dog"):                     # two class folders, but the model has ten classes
        (tmp_path / "pets" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "pets" / name / "a.png")
    assert main(["evaluate", str(run), "--data", str(tmp_path / "pets")]) == 1
    err = capsys.readouterr().err
    assert "has 2 classes (cat, dog)" in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2

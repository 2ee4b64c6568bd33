"""Transfer learning: a backbone (a keras.applications network or another spec) with weights
from a local file, frozen entirely or its first N layers, a new head; trained, unfrozen for
fine-tuning, exported. The static counts are checked against Keras itself (for every
application, its tables and zoo spec rows: tests/test_backbone_zoo.py)."""
import numpy as np
import pytest

import keras
from cnnbuild import build_model, infer, load_spec
from cnnbuild.cli import main
from cnnbuild.errors import SpecError
from cnnbuild.serve.export import export_run
from run_helpers import digits, make_run, train_model


def _keras_counts(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)


def _spec(tmp_path, backbone, head="  - global_avg_pool\n  - dense: {units: 3, activation: softmax}\n", size=32, channels=3):
    path = tmp_path / "transfer.yaml"
    path.write_text(f"name: transfer\ninput: [{size}, {size}, {channels}]\nlayers:\n  - backbone: {backbone}\n{head}",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("freeze", ["true", "1"])     # N inside a layer, for every application: test_backbone_zoo
def test_static_counts_equal_keras_application(tmp_path, freeze):
    spec = load_spec(_spec(tmp_path, f"{{application: MobileNetV2, freeze: {freeze}}}"))
    report = infer(spec)
    assert report.valid, report.errors
    model = build_model(spec)
    assert (report.trainable_params, report.non_trainable_params) == _keras_counts(model)


def test_application_weights_from_a_local_file(tmp_path):
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    source.save_weights(tmp_path / "mobilenet.weights.h5")
    spec = load_spec(_spec(tmp_path, "{application: MobileNetV2, weights: mobilenet.weights.h5, freeze: true, name: base}"))
    model = build_model(spec)
    base = model.get_layer("base")
    for ours, theirs in zip(base.weights, source.weights):
        assert np.array_equal(ours.numpy(), theirs.numpy())
    channels = source.output_shape[-1]   # 1280: MobileNetV2 ends in a 1×1 convolution to 1280 channels
    assert channels == 1280
    assert not base.trainable and _keras_counts(model)[0] == channels * 3 + 3   # only the head, dense 1280 → 3, trains


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """An earlier run: the small spec trained on the digits; its spec and model are the backbone."""
    return make_run(tmp_path_factory.mktemp("transfer") / "digits")


def test_seeds_recipe_freeze_train_unfreeze_export(pretrained, tmp_path):
    """Start from a trained network, retrain a new head for C = 3 classes with the backbone
    frozen, then unfreeze everything and fine-tune; the export verifies like any other."""
    head_spec = _spec(tmp_path, f"{{spec: {pretrained}/spec.yaml, weights: {pretrained}/model.keras, freeze: true, "
                                f"name: base}}", head="  - flatten\n  - dense: {units: 3, activation: softmax}\n", size=16, channels=1)
    spec = load_spec(head_spec)
    report = infer(spec)
    model = build_model(spec)
    trained = keras.saving.load_model(pretrained / "model.keras")
    # the pretrained spec (run_helpers.SMALL_SPEC) up to its flatten is the frozen backbone:
    # conv 3·3·1·8 + 8 = 80, batchnorm 4·8 = 32 and conv 3·3·8·16 + 16 = 1,168, in all 1,280;
    # its flatten hands 4·4·16 = 256 features to the new dense head (3 classes)
    frozen = trained.count_params() - trained.get_layer("dense_1").count_params()
    features = trained.get_layer("flatten_1").output.shape[-1]
    assert (frozen, features) == (1280, 256)
    assert (report.trainable_params, report.non_trainable_params) == _keras_counts(model) == (features * 3 + 3, frozen)
    assert np.array_equal(model.get_layer("base_conv_1").kernel.numpy(), trained.get_layer("conv_1").kernel.numpy())
    before = [w.numpy().copy() for w in model.non_trainable_weights]
    images, labels = digits()
    few = labels < 3
    train_model(model, images[few], labels[few], epochs=2)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.non_trainable_weights))   # frozen stays frozen
    head_run = tmp_path / "head"
    head_run.mkdir()
    model.save(head_run / "model.keras")
    (head_run / "classes.json").write_text('["zero", "one", "two"]')
    (head_run / "spec.yaml").write_text(head_spec.read_text())
    # fine-tuning: the trained head run itself is the backbone, whole and unfrozen
    fine_spec = tmp_path / "fine.yaml"
    fine_spec.write_text(f"name: fine\ninput: [16, 16, 1]\nlayers:\n  - backbone: {{spec: {head_run}/spec.yaml, "
                         f"weights: {head_run}/model.keras, include_top: true, freeze: false}}\n", encoding="utf-8")
    fine = build_model(load_spec(fine_spec))
    report = infer(load_spec(fine_spec))
    assert (report.trainable_params, report.non_trainable_params) == _keras_counts(fine)
    assert report.non_trainable_params == 16        # only batchnorm's moving statistics
    from cnnbuild.preprocess import preprocess
    x = preprocess(images[few][:50], (16, 16, 1))
    np.testing.assert_allclose(fine.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    train_model(fine, images[few], labels[few], epochs=1)
    fine_run = tmp_path / "fine_run"
    fine_run.mkdir()
    fine.save(fine_run / "model.keras")
    (fine_run / "classes.json").write_text('["zero", "one", "two"]')
    manifest = export_run(fine_run)
    assert manifest["verified"]["max_abs_diff"] <= 1e-5


def test_application_backbone_exports(tmp_path):
    spec = load_spec(_spec(tmp_path, "{application: MobileNetV2, freeze: true}"))
    model = build_model(spec)
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "classes.json").write_text('["a", "b", "c"]')
    assert export_run(run)["verified"]["max_abs_diff"] <= 1e-5


@pytest.mark.parametrize("backbone, message", [
    ("{application: MobileNetV2, spec: x.yaml}", "exactly one of 'application'"),
    ("{application: MobileNet}", "must be one of"),
    ("{application: MobileNetV2, weights: missing.weights.h5}", "weights file missing.weights.h5 not found"),
    ("{application: MobileNetV2, freeze: 999}", "freeze: 999, but MobileNetV2 has 154 Keras layers"),
    ("{application: MobileNetV2, include_top: true}", "include_top: true is not supported"),
    ("{spec: missing.yaml}", "spec missing.yaml"),
    ("{spec: transfer.yaml}", "is its own backbone"),
])
def test_errors_say_where_and_what(tmp_path, backbone, message):
    path = _spec(tmp_path, backbone)
    with pytest.raises(SpecError, match=message) as caught:
        spec = load_spec(path)
        report = infer(spec)
        if report.errors:
            raise SpecError(report.errors)
    assert str(caught.value).startswith(str(path))


def test_grayscale_input_to_application_is_an_error(tmp_path, capsys):
    assert main(["check", str(_spec(tmp_path, "{application: MobileNetV2}", channels=1))]) == 1
    assert "MobileNetV2 takes RGB images (3 channels), got 1" in capsys.readouterr().err


def test_specs_that_are_each_others_backbone_are_refused(tmp_path):
    """The spec stage reads a backbone's spec itself and remembers which spec files it is
    inside, so a loop through two files ends in an error naming the files, not a recursion."""
    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\ninput: [8, 8, 3]\nlayers:\n"
                                               f"  - backbone: {{spec: {other}.yaml, include_top: true}}\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"spec b.yaml is its own backbone \(b.yaml → a.yaml → b.yaml\)"):
        load_spec(tmp_path / "a.yaml")

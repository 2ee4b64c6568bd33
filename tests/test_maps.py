"""`cnnbuild maps`: an image's feature maps (and a layer's kernels) as one labelled PNG, from
an untrained spec with fixed kernels and from a trained run. The expected maps are computed
here by scipy.signal.correlate2d from the image's pixels and the model file's own kernel."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.signal import correlate2d

from cnnbuild.cli import main
from conftest import SPECS
from run_helpers import make_run, write_digit_pngs
from test_fixed_kernels import SEED_FILTERS, photograph


@pytest.fixture(scope="module")
def gray_png(tmp_path_factory):
    """A real photograph as a 64×64 grayscale PNG: the spec's input size, so nothing is resized."""
    path = tmp_path_factory.mktemp("maps") / "china.png"
    Image.fromarray(np.round(photograph().mean(axis=-1) * 255).astype(np.uint8), mode="L").save(path)
    return path


def test_the_seed_filters_maps_are_the_independent_correlations(gray_png, tmp_path, capsys):
    from cnnbuild import build_model, load_spec
    from cnnbuild.serve.maps import feature_panels
    pixels = np.asarray(Image.open(gray_png), dtype="float64") / 255    # preprocess scales 0…255 to 0…1
    [panel] = feature_panels(build_model(load_spec(SPECS / "fixed_filters.yaml")), gray_png, ["seed_filters"])
    assert panel.header == "seed_filters: output 64×64×7" and panel.titles[3] == "seed_filters[3]"
    for index, matrix in enumerate(SEED_FILTERS.values()):
        np.testing.assert_allclose(panel.images[index], correlate2d(pixels, np.asarray(matrix), mode="same"), atol=1e-5)

    out = tmp_path / "maps.png"
    assert main(["maps", str(SPECS / "fixed_filters.yaml"), str(gray_png), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    picture = Image.open(out)
    assert picture.width >= 7 * 64 and picture.height >= 64     # seven maps in a row, none shrunk
    assert main(["maps", str(SPECS / "fixed_filters.yaml"), "--filters", "--out", str(tmp_path / "k.png")]) == 0
    assert "kernel 3×3×1×7" in capsys.readouterr().out and Image.open(tmp_path / "k.png").width > 7 * 3


def test_a_trained_runs_maps_come_from_its_model_file(tmp_path, capsys):
    import keras
    from cnnbuild.preprocess import preprocess
    from cnnbuild.serve.maps import feature_panels
    run = make_run(tmp_path / "run", epochs=1)
    [(png, _)] = write_digit_pngs(tmp_path / "pngs", count=1)
    model = keras.saving.load_model(run / "model.keras", compile=False)
    kernel, bias = model.get_layer("conv_2").get_weights()                  # conv 3×3, 8 → 16, same, no batchnorm
    image = np.asarray(Image.open(png))[None, :, :, None]
    before = keras.Model(model.inputs, model.get_layer("max_pool_1").output)(preprocess(image, (16, 16, 1)))
    before = np.asarray(before)[0]
    [panel] = feature_panels(model, png, ["conv_2"], max_maps=4)
    assert panel.header == "conv_2: output 8×8×16; maps 0–3 of 16"
    for k in range(4):
        linear = sum(correlate2d(before[:, :, c], kernel[:, :, c, k], mode="same") for c in range(8)) + bias[k]
        np.testing.assert_allclose(panel.images[k], np.maximum(linear, 0), atol=1e-4)     # its relu

    assert main(["maps", str(run), str(png), "--layer", "conv_1_relu", "--layer", "conv_2",
                 "--out", str(tmp_path / "run.png")]) == 0
    assert Image.open(tmp_path / "run.png").height > 2 * 64


@pytest.mark.parametrize("arguments, said", [
    (["IMAGE", "--layer", "seed_filter"], "--layer seed_filter: the model has no layer of that name\n  hint: did you "
                                          "mean 'seed_filters'?"),
    ([], "give an IMAGE to draw its feature maps, or --filters"),
    (["IMAGE", "--network", "generator"], None),     # a one-network spec: --network is not needed, and harmless
])
def test_refusals_name_the_fix(arguments, said, gray_png, tmp_path, capsys):
    arguments = [str(gray_png) if a == "IMAGE" else a for a in arguments]
    status = main(["maps", str(SPECS / "fixed_filters.yaml"), *arguments, "--out", str(tmp_path / "m.png")])
    if said is None:
        assert status == 0
    else:
        assert status == 2 and said in capsys.readouterr().err and not (tmp_path / "m.png").exists()

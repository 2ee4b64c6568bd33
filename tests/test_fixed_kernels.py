"""Fixed kernels (`conv: {weights: …}`): seed 002's filters, checked against the kernel and
the channels, and built exactly. The expected maps come from scipy.signal.correlate2d on a
real photograph (scikit-learn's bundled china.jpg), never from cnnbuild."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate2d

from cnnbuild import SpecError, build_model, check, load_spec, parse_spec
from conftest import SPECS

# The seed's matrices as it prints them (002, "Convolved Image"), written out here again.
SEED_FILTERS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "edge_detection": [[1, 0, -1], [0, 0, 0], [-1, 0, 1]],
    "edge_detection_4": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "edge_detection_8": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "box_blur": (np.ones((3, 3)) / 9).tolist(),
    "gaussian_blur": (np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16).tolist(),
}


def photograph(size=64):
    """A real image: the centre of scikit-learn's china.jpg, RGB in [0, 1], size×size."""
    from sklearn.datasets import load_sample_image
    image = load_sample_image("china.jpg").astype("float32") / 255
    top, left = (image.shape[0] - 4 * size) // 2, (image.shape[1] - 4 * size) // 2
    return image[top:top + 4 * size:4, left:left + 4 * size:4]


def test_the_seed_filters_spec_gives_the_maps_of_an_independent_correlation():
    spec = load_spec(SPECS / "fixed_filters.yaml")
    report = check(spec)
    assert report.valid and report.output == (64, 64, 7) and report.trainable_params == 0
    gray = photograph().mean(axis=-1)
    maps = np.asarray(build_model(spec)(gray[None, :, :, None]))[0]
    for index, matrix in enumerate(SEED_FILTERS.values()):
        # padding: 1 pads zeros on every side, as correlate2d's mode="same" with fill 0
        expected = correlate2d(gray, np.asarray(matrix), mode="same", boundary="fill")
        np.testing.assert_allclose(maps[:, :, index], expected, atol=1e-5)


def test_a_matrix_serves_every_channel_and_a_full_array_is_kept_as_written():
    image = photograph(32)
    rng = np.random.default_rng(0)
    full = rng.normal(size=(3, 3, 3, 2)).round(2)
    def maps(conv):
        model = build_model(parse_spec(f"input: [32, 32, 3]\nlayers:\n  - conv: {conv}\n", "fixed.yaml"))
        return model, np.asarray(model(image[None]))[0]
    model, sharp = maps("{name: sharp, filters: 2, kernel: 3, weights: sharpen, bias: false, trainable: false}")
    _, whole = maps(f"{{name: full, filters: 2, kernel: 3, weights: {full.tolist()}}}")
    # one 2-D matrix for each (input channel, filter) pair: every filter sums the channels' correlations
    expected = sum(correlate2d(image[:, :, c], np.asarray(SEED_FILTERS["sharpen"]), mode="valid") for c in range(3))
    for k in range(2):
        np.testing.assert_allclose(sharp[:, :, k], expected, atol=1e-4)
        expected_full = sum(correlate2d(image[:, :, c], full[:, :, c, k], mode="valid") for c in range(3))
        np.testing.assert_allclose(whole[:, :, k], expected_full, atol=1e-4)
    assert not model.get_layer("sharp").trainable


@pytest.mark.parametrize("layer, where, message, hint", [
    ("conv: {filters: 2, kernel: 5, weights: sharpen}", "weights", "weights are 3×3 but kernel is 5×5", "write kernel: 3"),
    ("conv: {filters: 3, kernel: 3, weights: [sharpen, box_blur]}", "weights",
     "weights hold 2 filters but filters is 3", "write filters: 2"),
    ("conv: {filters: 3, kernel: 3, weights: gausian_blur}", "weights", "'gausian_blur' is not a kernel preset",
     "did you mean 'gaussian_blur'"),
    ("conv: {filters: 1, kernel: 3, weights: [[1, 2], [3]]}", "weights", "is not rectangular", "same number of values"),
    ("conv: {filters: 1, kernel: 1, weights: [[[[1.0], [2.0]]]]}", "layer", "weights are 1×1×2×1 but the input has 3 "
     "channels", "give a 1×1×3×1 array"),
    ("conv: {filters: 2, kernel: 3, groups: 2, weights: sharpen}", "weights", "cannot be combined with groups",
     "groups: 1"),
])
def test_fixed_weights_are_refused_at_their_place_with_a_fix(layer, where, message, hint):
    text = f"input: [8, 8, 3]\nlayers:\n  - {layer}\n"
    try:
        report = check(parse_spec(text, "w.yaml"))
        problems = report.errors
    except SpecError as error:
        problems = error.problems
    assert len(problems) == 1, problems
    problem = problems[0]
    # the column of the value of `weights:` (or of the layer, for what only the input shows): "  - " is 4 wide
    column = 5 + (layer.index("weights: ") + len("weights: ") if where == "weights" else 0)
    assert (problem.where.line, problem.where.column) == (3, column), problem
    assert message in problem.message and hint in problem.hint, problem

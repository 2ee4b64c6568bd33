"""The seeds' worked examples (seeds/, summarised in /work/shared/SEEDS.md).

Every expected number below is the seeds' own (or hand arithmetic written next to it), never
read back from cnnbuild. The pooling example runs through the built Keras model, so the
builder is held to the seeds as well as the checker.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from cnnbuild import build_model, infer, parse_spec


def spec(input_shape, *layers, extra=""):
    text = f"name: seed_example\ninput: {list(input_shape)}\n{extra}layers:\n" + "".join(f"  - {l}\n" for l in layers)
    return parse_spec(text, "seed.yaml")


def report_of(input_shape, *layers, extra=""):
    return infer(spec(input_shape, *layers, extra=extra))


def test_six_5x5_filters_on_32x32x3_give_28x28x6():
    report = report_of((32, 32, 3), "conv: {filters: 6, kernel: 5}")
    assert report.valid and report.output == (28, 28, 6)
    assert report.rows[0].rule == "(32 − 5 + 2·0)/1 + 1 = 28"
    assert report.params == 6 * (5 * 5 * 3 + 1)       # K · (F·F·C_in + 1) = 456
    model = build_model(spec((32, 32, 3), "conv: {filters: 6, kernel: 5}"))
    assert model.output_shape == (None, 28, 28, 6)
    assert model.get_layer("conv_1").kernel.shape == (5, 5, 3, 6)   # each filter is 5×5×3: it has the input's depth


def test_ten_3x3x3_filters_have_280_parameters_whatever_the_input_size():
    for size in (7, 32, 224):
        report = report_of((size, size, 3), "conv: {filters: 10, kernel: 3}")
        assert report.params == 280                    # 10 · (3·3·3 + 1) = 10 · 28


@pytest.mark.parametrize("stride, size", [(1, 5), (2, 3)])
def test_7x7_input_3x3_filter_whole_strides(stride, size):
    report = report_of((7, 7, 1), f"conv: {{filters: 1, kernel: 3, stride: {stride}}}")
    assert report.valid and report.output == (size, size, 1)
    assert report.rows[0].rule.endswith(f"= {size}")


def test_7x7_input_3x3_filter_stride_3_cannot_be_applied():
    report = report_of((7, 7, 1), "conv: {filters: 1, kernel: 3, stride: 3}")
    assert not report.valid
    [both] = report.errors      # height and width fail alike: one error naming both
    assert "output height and width are not whole numbers: (7 − 3 + 2·0)/3 + 1 = 2.33" in both.message
    # the hint offers fixes that work: padding 1 → (7 − 3 + 2)/3 + 1 = 3, stride 2 → 3
    assert "padding: 1 gives 3" in both.hint and "stride: 2 gives 3" in both.hint
    assert "or rounding: floor drops 1 row and 1 column" in both.hint
    assert (both.where.line, both.where.column) == (4, 5)
    fixed = report_of((7, 7, 1), "conv: {filters: 1, kernel: 3, stride: 3, padding: 1}")
    assert fixed.valid and fixed.output == (3, 3, 1)


def test_stride_2_over_an_even_size_is_fixed_by_uneven_or_same_padding():
    # (32 − 3 + 2P)/2 + 1: 29 + 2P is odd for every P, so no symmetric padding helps; one more row and
    # column at the end gives (32 − 3 + 1)/2 + 1 = 16, as does 'same': ⌈32/2⌉ = 16
    report = report_of((32, 32, 3), "conv: {filters: 8, kernel: 3, stride: 2}")
    [both] = report.errors
    assert "output height and width are not whole numbers: (32 − 3 + 2·0)/2 + 1 = 15.50" in both.message
    assert both.hint == ("padding: [[0, 1], [0, 1]] gives 16; padding: same gives ⌈32/2⌉ = 16; stride: 1 gives 30; "
                         "or rounding: floor drops 1 row and 1 column")
    for padding in ("[[0, 1], [0, 1]]", "same"):        # the fixes offered, held to Keras
        fixed = f"conv: {{filters: 8, kernel: 3, stride: 2, padding: {padding}}}"
        assert report_of((32, 32, 3), fixed).output == (16, 16, 8)
        assert build_model(spec((32, 32, 3), fixed)).output_shape == (None, 16, 16, 8)


@pytest.mark.parametrize("kernel, padding", [(3, 1), (5, 2), (7, 3)])
def test_padding_f_minus_1_over_2_keeps_the_size(kernel, padding):
    for layer in (f"conv: {{filters: 2, kernel: {kernel}, padding: {padding}}}",
                  f"conv: {{filters: 2, kernel: {kernel}, padding: same}}"):
        report = report_of((32, 32, 3), layer)
        assert report.output == (32, 32, 2), layer
    model = build_model(spec((32, 32, 3), f"conv: {{filters: 2, kernel: {kernel}, padding: {padding}}}"))
    assert model.output_shape == (None, 32, 32, 2)


@pytest.mark.parametrize("dilation, covers", [(1, 3), (2, 5), (4, 9)])
def test_dilated_3x3_kernels_cover_3_5_9(dilation, covers):
    report = report_of((17, 17, 1), f"conv: {{filters: 1, kernel: 3, dilation: {dilation}}}")
    assert report.rows[0].receptive_field == (covers, covers)
    assert report.output == (17 - covers + 1, 17 - covers + 1, 1)
    model = build_model(spec((17, 17, 1), f"conv: {{filters: 1, kernel: 3, dilation: {dilation}}}"))
    assert model.output_shape == (None, 17 - covers + 1, 17 - covers + 1, 1)


def test_receptive_field_grows_with_stacking_and_stride():
    # stacked 1-, 2-, 4-dilated 3×3 convolutions: 3, then 3 + 2·2 = 7, then 7 + 2·4 = 15
    report = report_of((32, 32, 1), "conv: {filters: 1, kernel: 3, dilation: 1, padding: same}",
                       "conv: {filters: 1, kernel: 3, dilation: 2, padding: same}",
                       "conv: {filters: 1, kernel: 3, dilation: 4, padding: same}")
    assert [r.receptive_field for r in report.rows] == [(3, 3), (7, 7), (15, 15)]
    # a strided convolution spaces the next layer's taps: 3, then 3 + (3 − 1)·2 = 7
    report = report_of((32, 32, 1), "conv: {filters: 1, kernel: 3, stride: 2, padding: same}",
                       "conv: {filters: 1, kernel: 3, padding: same}")
    assert [r.receptive_field for r in report.rows] == [(3, 3), (7, 7)]


def test_receptive_field_through_pools_and_a_squeeze_and_excitation():
    # RF_next = RF + (F − 1)·jump, jump_next = jump·S. Two 3×3 convolutions: 3, 3 + 2 = 5; a 2×2/2 pool:
    # 5 + 1 = 6 (jump 2); a 3×3 conv after it: 6 + 2·2 = 10. VGG's conv, pool, conv: 3, 4, 4 + 2·2 = 8.
    conv = "conv: {filters: 2, kernel: 3, padding: same}"
    report = report_of((32, 32, 1), conv, conv, "max_pool: 2", conv)
    assert [r.receptive_field for r in report.rows] == [(3, 3), (5, 5), (6, 6), (10, 10)]
    report = report_of((32, 32, 1), conv, "max_pool: 2", conv)
    assert [r.receptive_field for r in report.rows] == [(3, 3), (4, 4), (8, 8)]
    # squeeze-and-excitation: the pooled 1×1 branch depends on the whole 32×32 image, so every element of
    # the product does too, and so does every element after it: 32×32, never more (not 96, 160)
    report = report_of((32, 32, 3), "conv: {name: feat, filters: 8, kernel: 3, padding: same}",
                       "global_avg_pool: {keepdims: true}", "multiply: {with: [feat]}", conv,
                       "conv: {filters: 2, kernel: 3, stride: 2, padding: same}", conv)
    assert [r.receptive_field for r in report.rows] == [(3, 3)] + [(32, 32)] * 5
    # a broadcast 1×1 input sets no spacing: here a 4×4/4 window (field 4, jump 4, not a global pool)
    # times a 1×1 conv's map (field 1, jump 1) has field 4 and jump 1, so a 3×3 after it: 4 + 2·1 = 6
    report = report_of((4, 4, 1), "conv: {name: feat, filters: 1, kernel: 1}", "conv: {filters: 1, kernel: 4, stride: 4}",
                       "multiply: {with: [feat]}", conv)
    assert [r.receptive_field for r in report.rows] == [(1, 1), (4, 4), (4, 4), (6, 6)]
    # a residual sum keeps the larger of its two fields: body 3 + 2 = 5 over the identity's 3
    report = report_of((16, 16, 1), conv, f"residual: {{body: [{conv}]}}")
    assert [r.receptive_field for r in report.rows] == [(3, 3), (5, 5), (5, 5)]


POOL_INPUT = [[2, -4, 2, 2],
              [0, 1, 0, -1],
              [2, 1, 0, 2],
              [5, -3, 1, 4]]


def test_the_pooling_example_through_the_built_model():
    # file 001: 2×2 max and average pooling with stride 2 on a 4×4 map
    pools = spec((4, 4, 1), "inception: {branches: [[{max_pool: 2}], [{avg_pool: 2}], [{sum_pool: 2}]]}")
    report = infer(pools)
    assert report.output == (2, 2, 3) and report.params == 0     # pools learn nothing; 2×2/2 halves each side
    model = build_model(pools, report)
    out = np.asarray(model(np.array(POOL_INPUT, dtype="float32").reshape(1, 4, 4, 1), training=False))[0]
    np.testing.assert_allclose(out[:, :, 0], [[2, 2], [5, 4]])
    np.testing.assert_allclose(out[:, :, 1], [[-0.25, 0.75], [1.25, 1.75]])
    np.testing.assert_allclose(out[:, :, 2], 4 * np.array([[-0.25, 0.75], [1.25, 1.75]]))   # sum = average × area


def test_pooling_acts_on_each_map_separately():
    x = np.stack([np.array(POOL_INPUT), -np.array(POOL_INPUT)], axis=-1).astype("float32")[None]
    model = build_model(spec((4, 4, 2), "max_pool: 2"))
    out = np.asarray(model(x, training=False))[0]
    np.testing.assert_allclose(out[:, :, 0], [[2, 2], [5, 4]])
    np.testing.assert_allclose(out[:, :, 1], [[4, 1], [3, 0]])     # max of the negated map = −min of each window


@pytest.mark.parametrize("rate", [0.5, 0.25])
def test_dropout_scales_survivors_by_1_over_1_minus_p_in_training(rate):
    model = build_model(spec((32, 32, 8), f"dropout: {rate}"))
    x = np.ones((1, 32, 32, 8), dtype="float32")
    trained = np.asarray(model(x, training=True))
    survivors = trained[trained != 0]
    np.testing.assert_allclose(survivors, 1 / (1 - rate), rtol=1e-6)
    assert abs((trained == 0).mean() - rate) < 0.05                # about a fraction p is dropped (8,192 values)
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), x)   # nothing dropped at prediction time


def test_fully_connected_parameter_argument():
    # 32×32×3 → a 3072 vector
    assert report_of((32, 32, 3), "flatten").output == (3072,)
    # a 100×100 image with 2,000 hidden units: 100·100·2000 = 2·10⁷ weights (+ 2,000 biases)
    report = report_of((100, 100, 1), "flatten", "dense: 2000")
    assert report.params == 2 * 10**7 + 2000
    assert math.isclose(report.params, 2e7, rel_tol=1e-3)
    # a 1000×1000×3 image with 1,000 units ≈ 3 billion: over the default budget, refused unbuilt
    huge = report_of((1000, 1000, 3), "flatten", "dense: 1000")
    assert not huge.valid and "3,000,001,000 parameters" in huge.errors[0].message
    allowed = report_of((1000, 1000, 3), "flatten", "dense: 1000",
                        extra="budget: {params: 4000000000, activation_bytes: 100000000}\n")
    assert allowed.valid and allowed.params == 3 * 10**9 + 1000


def test_neon_program_arithmetic():
    # file 002: conv 3×3, padding 2, stride 1, dilation 2 (covers 5): (N − 5 + 2·2)/1 + 1 = N;
    # max pool 3×3, padding 1, stride 2: (33 − 3 + 2·1)/2 + 1 = 17 on an odd size
    report = report_of((33, 33, 3), "conv: {filters: 32, kernel: 3, padding: 2, dilation: 2, initializer: he_normal, activation: relu}",
                       "max_pool: {size: 3, padding: 1, stride: 2}")
    assert [r.output for r in report.rows] == [(33, 33, 32), (17, 17, 32)]
    assert report.rows[0].rule == "(33 − 5 + 2·2)/1 + 1 = 33"
    assert report.params == 32 * (3 * 3 * 3 + 1)


def test_frameworks_compute_cross_correlation():
    # file 001 quotes torch.nn.Conv2d: the kernel is slid as is, not flipped
    model = build_model(spec((1, 3, 1), "conv: {filters: 1, kernel: [1, 3], bias: false}"))
    model.get_layer("conv_1").set_weights([np.array([1, 2, 3], dtype="float32").reshape(1, 3, 1, 1)])
    out = np.asarray(model(np.array([10, 20, 30], dtype="float32").reshape(1, 1, 3, 1)))
    assert out.ravel().tolist() == [1 * 10 + 2 * 20 + 3 * 30]      # 140; a true convolution would give 100

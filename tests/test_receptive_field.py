"""The receptive field the check reports, against the truth: the input gradient of a built model.

Every weight is 1 and every activation linear, so an output element's gradient is non-zero
exactly at the input pixels it reads (bilinear interpolation's zero weights, on an element
itself, read nothing there, as they should). The field of one position is the span of its
non-zero rows; the check reports the largest over positions, so the test takes the largest
over the positions whose field lies inside the image (at the edges padding cuts it).
"""
import numpy as np
import pytest

from cnnbuild import build_model, infer, parse_spec

ONES = "bias: false, initializer: ones"


def spec(size, *layers):
    return parse_spec(f"name: rf\ninput: [{size}, {size}, 1]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers))


def gradient_field(model, size):
    """The largest span of input rows one output element reads, over output rows in the
    middle column whose rows stay inside the image."""
    import tensorflow as tf
    x = tf.constant(np.ones((1, size, size, 1), dtype="float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x, training=False)
        column = tf.reduce_sum(y[0, :, y.shape[2] // 2, :], axis=-1)    # one value per output row
    rows = tape.jacobian(column, x).numpy()[:, 0, :, :, 0]             # (output row, input row, input column)
    widest = 0
    for grad in rows:
        read = np.nonzero(np.abs(grad).sum(axis=1))[0]
        if len(read) and read.min() > 0 and read.max() < size - 1:       # not cut by the image's edges
            widest = max(widest, read.max() - read.min() + 1)
    return widest


CASES = [
    # (layers, the field worked out by hand, size)
    ([f"conv_transpose: {{filters: 1, kernel: 3, {ONES}}}"], 3, 16),            # 3 taps of the one input
    ([f"conv: {{filters: 1, kernel: 3, stride: 2, {ONES}}}", f"conv_transpose: {{filters: 1, kernel: 4, stride: 2, {ONES}}}"],
     5, 33),    # 2 of the 4 taps land on inputs 2 apart: 3 + 2
    ([f"conv: {{filters: 1, kernel: 3, {ONES}}}", f"conv_transpose: {{filters: 1, kernel: 4, stride: 2, {ONES}}}",
      f"conv: {{filters: 1, kernel: 3, padding: same, {ONES}}}"], 5, 32),
    ([f"conv: {{filters: 1, kernel: 3, stride: 2, padding: same, {ONES}}}",
      f"conv_transpose: {{filters: 1, kernel: 3, stride: 2, padding: same, {ONES}}}"], 5, 32),
    ([f"conv_transpose: {{filters: 1, kernel: 3, dilation: 2, {ONES}}}"], 5, 16),
    # ×2 bilinear reads the two elements around each row: 3 + 2 (the check used to say 3)
    ([f"conv: {{filters: 1, kernel: 3, stride: 2, {ONES}}}", "upsample: {size: 2, interpolation: bilinear}"], 5, 33),
    # ×3 bilinear: rows 0, 1, 2 read elements (−1, 0), (0), (0, 1); a 3×3 over them reads 3 elements 2 apart: 3 + 2·2
    ([f"conv: {{filters: 1, kernel: 3, stride: 2, {ONES}}}", "upsample: {size: 3, interpolation: bilinear}",
      f"conv: {{filters: 1, kernel: 3, {ONES}}}"], 7, 33),
    ([f"conv: {{filters: 1, kernel: 3, stride: 2, {ONES}}}", "upsample: 2"], 3, 33),       # nearest: one element
    # after nearest upsampling a 2×2 window reads 1 or 2 of the elements before: 3, or 3 + 2
    ([f"conv: {{filters: 1, kernel: 3, stride: 2, {ONES}}}", "upsample: 2", f"conv: {{filters: 1, kernel: 2, {ONES}}}"], 5, 33),
    ([f"conv: {{filters: 1, kernel: 3, {ONES}}}", "avg_pool: 2", f"conv: {{filters: 1, kernel: 3, padding: same, {ONES}}}",
      "upsample: 2", f"conv: {{filters: 1, kernel: 3, padding: same, {ONES}}}"], 10, 32),
]


@pytest.mark.parametrize("layers, expected, size", CASES, ids=[str(i) for i in range(len(CASES))])
def test_receptive_field_equals_the_input_gradients(layers, expected, size):
    s = spec(size, *layers)
    report = infer(s)
    assert report.valid, report.errors
    truth = gradient_field(build_model(s, report), size)
    assert truth == expected, (truth, expected)
    assert report.rows[-1].receptive_field[0] == truth


def test_u_net_skip_join_against_the_gradients():
    # a skip at full resolution joined with an upsampled path: the join reads the wider of the two
    s = parse_spec(f"""name: rf
input: [32, 32, 1]
layers:
  - conv: {{name: skip, filters: 1, kernel: 3, padding: same, {ONES}}}
  - conv: {{filters: 1, kernel: 3, stride: 2, padding: same, {ONES}}}
  - conv: {{filters: 1, kernel: 3, padding: same, {ONES}}}
  - conv_transpose: {{filters: 1, kernel: 2, stride: 2, {ONES}}}
  - concat: {{with: [skip]}}
  - conv: {{filters: 1, kernel: 3, padding: same, {ONES}}}
""")
    report = infer(s)
    assert report.rows[-1].receptive_field[0] == gradient_field(build_model(s, report), 32)


def test_the_rule_says_the_field_is_the_largest_after_upsampling():
    report = infer(spec(8, "upsample: {size: 2, interpolation: bilinear}", "conv_transpose: {filters: 1, kernel: 4, stride: 2}"))
    assert all("RF the largest over positions" in row.rule for row in report.rows)

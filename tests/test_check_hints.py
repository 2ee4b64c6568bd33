"""Specs the checker passes but a Keras user rarely means, and hints that name the fix."""
from cnnbuild import infer, parse_spec
from cnnbuild.check.report import format_table


def report(input_shape, *layers):
    return infer(parse_spec(f"name: t\ninput: {list(input_shape)}\nlayers:\n" + "".join(f"  - {l}\n" for l in layers), "t.yaml"))


def test_a_dense_straight_after_a_convolution_is_warned_about():
    found = report((28, 28, 1), "conv: {name: c1, filters: 10, kernel: 3}", "max_pool: 2", "dense: 10")
    assert found.valid and found.output == (13, 13, 10)
    [warning] = found.warnings
    assert warning.layer == "dense_1" and warning.where.line == 6
    assert "dense acts on each position; add flatten or global_avg_pool for a classifier" in warning.message
    assert "max_pool 'max_pool_1'" in warning.message and "13×13×10" in warning.message
    for fine in (("conv: {filters: 4, kernel: 3}", "flatten", "dense: 10"),
                 ("conv: {filters: 4, kernel: 3}", "global_avg_pool", "dense: 10"),
                 ("conv: {filters: 4, kernel: 3}", "layer_norm", "dense: 16"),     # ConvNeXt's pointwise dense
                 ("dense: 4",)):                                                   # on the image itself: meant
        assert report((8, 8, 3), *fine).warnings == [], fine


def test_a_channels_first_input_is_named_with_its_channels_last_order():
    found = report((1, 28, 28), "conv: {filters: 6, kernel: 5}")
    [error] = found.errors
    assert "does not fit in 1" in error.message
    assert error.hint.endswith("write input: [28, 28, 1]")
    found = report((3, 224, 224), "conv: {filters: 6, kernel: 5}")
    assert found.errors[0].hint.endswith("write input: [224, 224, 3]")


def test_a_backbone_row_shows_its_caveat_in_full():
    found = report((96, 96, 3), "backbone: {application: MobileNetV2, freeze: true}", "global_avg_pool", "dense: 3")
    text = format_table(found)
    rule = found.rows[0].rule
    assert len(rule) > 44 and rule.endswith("layers as zoo mobilenet_v2.yaml") and found.rows[0].macs > 0
    assert f"backbone_1: {rule}" in text.splitlines()

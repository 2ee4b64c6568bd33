"""Every registered kind, checked against Keras itself.

For each kind in `REGISTRY` a table of small example specs is checked (pure Python) and
built (Keras); the built model's output shape and its total and trainable parameter counts
must equal the static report, every named layer's output shape must equal its report row,
and a forward pass must run. A kind registered without a case here fails
`test_kind[<kind>]`, so a new kind cannot slip in untested.

Numbers in the value tests below are worked out by hand in the test, not read from cnnbuild.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cnnbuild import SpecError, build_model, infer, parse_spec
from cnnbuild.layers import REGISTRY

GOOD = Path(__file__).parent / "specs" / "good"


def spec_text(input_shape, layers, blocks="", extra=""):
    """A whole spec from its input shape and the YAML of its `layers:` list."""
    text = f"name: case\ninput: {list(input_shape)}\n{extra}"
    if blocks:
        text += "blocks:\n" + textwrap.indent(textwrap.dedent(blocks).strip("\n"), "  ") + "\n"
    return text + "layers:\n" + textwrap.indent(textwrap.dedent(layers).strip("\n"), "  ") + "\n"


# (label, input shape, layers YAML, blocks YAML). A case counts for every kind it uses.
CASES = [
    # --- convolutions: every padding form, padding modes, dilation, groups, connections
    ("conv_valid", (8, 8, 3), "- conv: {filters: 4, kernel: 3}", ""),
    ("conv_same_stride2", (7, 7, 3), "- conv: {filters: 4, kernel: 3, stride: 2, padding: same}", ""),
    ("conv_int_padding", (7, 7, 2), "- conv: {filters: 4, kernel: 5, padding: 2, activation: relu}", ""),
    ("conv_pair_padding", (6, 8, 2), "- conv: {filters: 3, kernel: 3, padding: [1, 0]}", ""),
    ("conv_asymmetric_padding", (6, 6, 2), "- conv: {filters: 3, kernel: 2, padding: [[0, 1], [1, 0]]}", ""),
    ("conv_reflect", (6, 6, 2), "- conv: {filters: 3, kernel: 3, padding: 1, padding_mode: reflect}", ""),
    ("conv_symmetric", (6, 6, 2), "- conv: {filters: 3, kernel: 5, padding: 2, padding_mode: symmetric}", ""),
    ("conv_same_reflect", (6, 6, 2), "- conv: {filters: 3, kernel: 3, padding: same, padding_mode: reflect}", ""),
    ("conv_dilation", (11, 11, 2), "- conv: {filters: 3, kernel: 3, dilation: 2}\n- conv: {filters: 2, kernel: 3, dilation: [1, 2], padding: same}", ""),
    ("conv_groups", (6, 6, 4), "- conv: {filters: 6, kernel: 3, groups: 2, bias: false}", ""),
    ("conv_connections", (8, 8, 3), "- conv: {filters: 4, kernel: 3, connections: [[0], [0, 1], [1, 2], [0, 1, 2]]}", ""),
    ("conv_connections_same", (8, 8, 3), "- conv: {filters: 2, kernel: 3, padding: same, connections: [[0, 2], [1]]}", ""),
    ("conv_batchnorm", (6, 6, 3), "- conv: {filters: 4, kernel: 3, batchnorm: true, activation: relu}", ""),
    ("conv_batchnorm_args", (6, 6, 3), "- conv: {filters: 4, kernel: 3, batchnorm: {epsilon: 1.0e-5, center: false}}", ""),
    ("conv_rect_kernel", (9, 7, 1), "- conv: {filters: 2, kernel: [3, 1], stride: [2, 1]}", ""),
    ("conv_leaky_inline", (5, 5, 1), "- conv: {filters: 2, kernel: 3, activation: leaky_relu}", ""),
    ("conv_frozen", (6, 6, 3), "- conv: {filters: 4, kernel: 3, batchnorm: true, trainable: false}\n- dense: 2", ""),
    ("depthwise", (6, 6, 3), "- depthwise_conv: {kernel: 3, multiplier: 2, padding: same, batchnorm: true, activation: relu6}", ""),
    ("depthwise_scalar", (6, 6, 3), "- depthwise_conv: 3", ""),
    ("depthwise_pad", (7, 7, 3), "- depthwise_conv: {kernel: 3, padding: 1, stride: 2, padding_mode: reflect, bias: false}", ""),
    ("separable", (6, 6, 3), "- separable_conv: {filters: 5, kernel: 3, multiplier: 2, padding: same, activation: relu}", ""),
    ("separable_pad", (8, 8, 2), "- separable_conv: {filters: 4, kernel: 3, padding: [[1, 0], [0, 1]], stride: 2, batchnorm: true}", ""),
    ("strided_dilated", (11, 11, 3), "- depthwise_conv: {kernel: 3, stride: 2, dilation: 2}\n"
                                     "- separable_conv: {filters: 2, kernel: 3, stride: 2, dilation: 2, padding: same}", ""),
    ("transpose_dilated", (4, 4, 3), "- conv_transpose: {filters: 2, kernel: 3, dilation: 2}", ""),
    ("transpose_valid", (4, 4, 3), "- conv_transpose: {filters: 2, kernel: 3, stride: 2}", ""),
    ("transpose_same", (4, 5, 3), "- conv_transpose: {filters: 2, kernel: 2, stride: 2, padding: same, batchnorm: true, activation: relu}", ""),
    # --- pooling: stride defaults to size; explicit padding
    ("max_pool_default", (8, 8, 2), "- max_pool", ""),
    ("max_pool_scalar", (9, 9, 2), "- max_pool: 3", ""),
    ("max_pool_stride", (9, 9, 2), "- max_pool: {size: 3, stride: 2}", ""),
    ("max_pool_padded", (6, 6, 2), "- max_pool: {size: 3, stride: 2, padding: 1, rounding: floor}", ""),
    ("max_pool_same", (7, 7, 2), "- max_pool: {size: 2, padding: same}", ""),
    ("max_pool_asym", (5, 5, 1), "- max_pool: {size: 2, padding: [[0, 1], [0, 1]]}", ""),
    ("avg_pool", (8, 8, 2), "- avg_pool: 2", ""),
    ("avg_pool_padded", (6, 6, 2), "- avg_pool: {size: 3, stride: 1, padding: 1}", ""),
    ("avg_pool_same", (7, 7, 2), "- avg_pool: {size: 2, padding: same}", ""),
    ("sum_pool", (8, 8, 2), "- sum_pool: 2", ""),
    ("sum_pool_padded", (5, 5, 2), "- sum_pool: {size: 3, stride: 2, padding: 1}", ""),
    ("global_avg", (5, 5, 3), "- global_avg_pool\n- dense: 2", ""),
    ("global_avg_keep", (5, 5, 3), "- global_avg_pool: {keepdims: true}", ""),
    ("global_max", (5, 5, 3), "- global_max_pool", ""),
    ("global_max_keep", (5, 5, 3), "- global_max_pool: {keepdims: true}", ""),
    ("max_unpool", (8, 8, 2), "- max_pool: {name: p1, size: 2}\n- conv: {filters: 2, kernel: 3, padding: same}\n"
                              "- max_unpool: {pool: p1}", ""),
    ("max_unpool_scalar", (6, 6, 2), "- max_pool: {name: p1, size: 3}\n- max_unpool: p1", ""),
    # --- core
    ("dense", (1, 1, 12), "- flatten\n- dense: {units: 5, activation: relu}\n- dense: {units: 3, bias: false}", ""),
    ("dense_batchnorm", (1, 2, 6), "- flatten\n- dense: {units: 5, batchnorm: true, activation: relu}", ""),
    ("dense_on_map", (4, 4, 3), "- dense: 6", ""),
    ("flatten", (4, 4, 3), "- flatten\n- dense: 2", ""),
    ("dropout", (4, 4, 3), "- dropout: 0.5\n- flatten\n- dropout: {rate: 0.25}", ""),
    ("dropout_spatial", (4, 4, 3), "- dropout: {rate: 0.2, spatial: true}", ""),
    ("batchnorm", (4, 4, 3), "- batchnorm\n- batchnorm: {momentum: 0.9, scale: false}", ""),
    ("maxout", (4, 4, 6), "- maxout\n- maxout: {pieces: 3}", ""),
    ("maxout_dense", (2, 5, 1), "- flatten\n- dense: 8\n- maxout: 4", ""),
    ("pad_zeros", (4, 5, 2), "- pad: 1\n- pad: [1, 2]\n- pad: [[0, 1], [2, 0]]", ""),
    ("pad_reflect", (4, 5, 2), "- pad: {padding: [[1, 2], [3, 0]], mode: reflect}", ""),
    ("pad_symmetric", (4, 5, 2), "- pad: {padding: 2, mode: symmetric}", ""),
    ("crop", (8, 8, 2), "- crop: 1\n- crop: [1, 0]\n- crop: [[0, 1], [2, 0]]", ""),
    ("upsample", (3, 4, 2), "- upsample\n- upsample: {size: [1, 3], interpolation: bilinear}", ""),
    ("reshape", (4, 4, 3), "- reshape: [-1]\n- reshape: {shape: [8, 6]}\n- reshape: [2, -1, 3]", ""),
    ("reshape_se", (4, 4, 8), "- global_avg_pool\n- reshape: [1, 1, -1]", ""),
    # --- activations: as a kind, by name, with alpha
    ("activation_kind", (4, 4, 2), "- activation: relu\n- activation: {function: leaky_relu, alpha: 0.2}\n"
                                   "- activation: {function: elu, alpha: 0.5}", ""),
    ("activations_by_name", (4, 4, 2),
     "\n".join(f"- {k}" for k in ("relu", "relu6", "elu", "selu", "gelu", "swish", "silu", "sigmoid", "hard_sigmoid",
                                  "hard_swish", "tanh", "softmax", "softplus", "softsign", "mish", "leaky_relu")), ""),
    ("leaky_alpha", (4, 4, 2), "- leaky_relu: 0.3\n- leaky_relu: {alpha: 0.05}\n- elu: {alpha: 2.0}", ""),
    ("inline_activations", (6, 6, 2),
     "\n".join(f"- conv: {{filters: 2, kernel: 1, activation: {k}}}" for k in (
         "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "swish", "silu", "sigmoid", "hard_sigmoid",
         "hard_swish", "tanh", "softmax", "softplus", "softsign", "mish")), ""),
    # --- merges: inputs / with, broadcasting
    ("concat_with", (6, 6, 2), "- conv: {name: a, filters: 3, kernel: 1}\n- conv: {filters: 4, kernel: 1}\n- concat: {with: [a]}", ""),
    ("concat_inputs", (6, 6, 2), "- conv: {name: a, filters: 3, kernel: 1}\n- conv: {name: b, filters: 4, kernel: 1, inputs: [input]}\n"
                                 "- concat: {inputs: [input, a, b]}", ""),
    ("concat_axis", (4, 4, 2), "- conv: {name: a, filters: 2, kernel: 1}\n- concat: {with: [a], axis: 1}", ""),
    ("add_with", (6, 6, 2), "- conv: {name: a, filters: 2, kernel: 3, padding: same}\n- conv: {filters: 2, kernel: 3, padding: same}\n"
                            "- add: {with: [a]}", ""),
    ("add_inputs", (6, 6, 2), "- conv: {name: a, filters: 2, kernel: 1}\n- add: {inputs: [input, a]}", ""),
    ("multiply_se", (6, 6, 4), """
        - conv: {name: features, filters: 8, kernel: 3, padding: same}
        - global_avg_pool: {keepdims: true}
        - conv: {filters: 2, kernel: 1, activation: relu}
        - conv: {filters: 8, kernel: 1, activation: sigmoid}
        - multiply: {with: [features]}
        """, ""),
    ("multiply_inputs", (6, 6, 4), "- global_max_pool: {name: g, keepdims: true}\n- multiply: {inputs: [input, g]}", ""),
    # --- composites
    ("inception", (8, 8, 4), """
        - inception:
            branches:
              - [{conv: {filters: 2, kernel: 1}}]
              - [{conv: {filters: 2, kernel: 1, activation: relu}}, {conv: {filters: 3, kernel: 3, padding: same}}]
              - [{conv: {filters: 2, kernel: 1}}, {conv: {filters: 3, kernel: 5, padding: 2}}]
              - [{max_pool: {size: 3, stride: 1, padding: same}}, {conv: {filters: 2, kernel: 1}}]
        """, ""),
    ("inception_identity", (6, 6, 3), """
        - inception:
            name: dense_layer
            branches:
              - []
              - [{batchnorm: {}}, relu, {conv: {filters: 4, kernel: 3, padding: same}}]
        """, ""),
    ("residual_identity", (6, 6, 4), """
        - residual:
            body:
              - conv: {filters: 4, kernel: 3, padding: same, batchnorm: true, activation: relu}
              - conv: {filters: 4, kernel: 3, padding: same, batchnorm: true}
            activation: relu
        """, ""),
    ("residual_projection", (8, 8, 4), """
        - residual:
            body:
              - conv: {filters: 8, kernel: 3, stride: 2, padding: same, batchnorm: true, activation: relu}
              - conv: {filters: 8, kernel: 3, padding: same, batchnorm: true}
            shortcut: auto
            activation: relu
        """, ""),
    ("residual_projection_odd", (7, 7, 4), """
        - residual:
            body: [{conv: {filters: 6, kernel: 3, stride: 2, padding: same}}]
        """, ""),
    ("residual_explicit", (8, 8, 4), """
        - residual:
            body:
              - conv: {filters: 8, kernel: 2, stride: 2}
            shortcut:
              - avg_pool: 2
              - conv: {filters: 8, kernel: 1, bias: false}
            activation: leaky_relu
        """, ""),
    ("residual_identity_explicit", (5, 5, 2), """
        - residual: {body: [{conv: {filters: 2, kernel: 3, padding: 1}}], shortcut: identity}
        """, ""),
    ("residual_input_name", (5, 5, 2), """
        - residual:
            body:
              - conv: {name: c1, filters: 2, kernel: 3, padding: same}
              - add: {with: [input]}
        """, ""),
    ("repeat_index", (16, 16, 2), """
        - repeat:
            times: 3
            layers:
              - conv: {name: c, filters: "${index * 4}", kernel: 3, padding: same, activation: relu}
              - conv: {filters: $index, kernel: 1}
              - max_pool: 2
        """, ""),
    ("repeat_local_names", (6, 6, 3), """
        - repeat:
            times: 2
            layers:
              - conv: {name: a, filters: 3, kernel: 3, padding: same}
              - add: {with: [input]}
        """, ""),
    ("block_params", (8, 8, 3), """
        - conv: {filters: 8, kernel: 3, padding: same}
        - basic: {filters: 8}
        - basic: {filters: 16, stride: 2}
        """, """
        basic:
          params: {filters: required, stride: 1}
          layers:
            - residual:
                body:
                  - conv: {filters: $filters, kernel: 3, stride: $stride, padding: same, batchnorm: true, activation: relu}
                  - conv: {filters: $filters, kernel: 3, padding: same, batchnorm: true}
                shortcut: auto
                activation: relu
        """),
    ("block_se_expr", (8, 8, 4), """
        - se: {name: se1, channels: 8, ratio: 4}
        - se: {channels: 8}
        """, """
        se:
          params: {channels: required, ratio: 2}
          layers:
            - depthwise_conv: {name: dw, kernel: 3, padding: same}
            - conv: {name: expand, filters: $channels, kernel: 1}
            - global_avg_pool: {keepdims: true}
            - conv: {filters: "${channels // ratio}", kernel: 1, activation: relu}
            - conv: {filters: $channels, kernel: 1, activation: sigmoid}
            - multiply: {with: [expand]}
        """),
    ("block_list_params", (12, 12, 3), """
        - cbn: {filters: 4, kernel: [1, 7]}
        - cbn: {filters: 4, kernel: [7, 1], stride: 2}
        - cbn: {filters: "${make_divisible(4 * 4.5, 8)}", kernel: 3, padding: [[0, 1], [0, 1]]}
        """, """
        cbn:
          params: {filters: required, kernel: required, stride: 1, padding: same}
          layers:
            - conv: {name: c, filters: $filters, kernel: $kernel, stride: $stride, padding: $padding, bias: false,
                     batchnorm: {epsilon: 1.0e-3}, activation: relu}
        """),
    ("block_two_inputs", (8, 8, 4), """
        - conv: {name: a, filters: 4, kernel: 1}
        - conv: {name: b, filters: 4, kernel: 3, padding: same}
        - cell: {name: c1, inputs: [a, b]}
        - cell: {inputs: [b, c1], filters: 4}
        """, """
        cell:
          inputs: [previous, current]
          params: {filters: 4}
          layers:
            - conv: {name: p, filters: $filters, kernel: 1, inputs: [previous]}
            - separable_conv: {name: x, filters: $filters, kernel: 3, padding: same, inputs: [current]}
            - add: {inputs: [p, x]}
        """),
    ("layer_norm", (5, 5, 6), "- layer_norm\n- layer_norm: {epsilon: 1.0e-6, center: false}", ""),
    ("layer_scale", (5, 5, 6), "- layer_scale: {init: 1.0e-6}\n- layer_scale: 0.5", ""),
    ("rescale_normalize", (5, 5, 3), "- rescale: {scale: 0.00784313725, offset: -1.0}\n- normalize\n"
                                     "- normalize: {mean: [0.485, 0.456, 0.406], variance: [0.052, 0.050, 0.051]}", ""),
    ("initializer_arguments", (6, 6, 3), """
        - conv: {filters: 4, kernel: 3, initializer: {name: variance_scaling, scale: 2.0, mode: fan_out, distribution: truncated_normal}}
        - depthwise_conv: {kernel: 3, initializer: {name: constant, value: 0.5}}
        - flatten
        - dense: {units: 3, initializer: {name: random_uniform, minval: -0.1, maxval: 0.1}}
        """, ""),
    ("residual_scale_drop_path", (6, 6, 4), """
        - residual:
            body: [{conv: {filters: 4, kernel: 3, padding: same}}]
            scale: 0.17
            activation: relu
        - residual:
            body: [{conv: {filters: 8, kernel: 3, padding: same, batchnorm: true}}]
            drop_path: 0.2
        - flatten
        - residual: {body: [{dense: 288}], drop_path: 0.5, scale: 0.5}
        """, ""),
    ("backbone_spec", (8, 8, 3), f"- backbone: {{spec: '{GOOD / 'small_backbone.yaml'}', freeze: 1}}\n- global_avg_pool\n"
                                 "- dense: 2", ""),
    ("backbone_spec_top", (8, 8, 3), f"- backbone: {{spec: '{GOOD / 'small_backbone.yaml'}', include_top: true}}", ""),
    ("rounding_floor_spec", (7, 7, 1), "- conv: {filters: 1, kernel: 3, stride: 3}\n- max_pool: 2", ""),
    ("rounding_floor_layer", (7, 7, 1), "- conv: {filters: 1, kernel: 3, stride: 3, rounding: floor}", ""),
]
SPEC_ROUNDING = {"rounding_floor_spec": "rounding: floor\n"}


def _spec(label, shape, layers, blocks):
    return parse_spec(spec_text(shape, layers, blocks, SPEC_ROUNDING.get(label, "")), f"{label}.yaml")


def _kinds(case):
    """Built-in kinds a case uses, composites' children included (none if it does not parse:
    test_every_case_parses then says why)."""
    try:
        spec = _spec(*case)
    except SpecError:
        return set()
    return {layer.kind for layer in spec.all_layers() if layer.kind in REGISTRY}


CASES_BY_KIND = {kind: [case for case in CASES if kind in _kinds(case)] for kind in REGISTRY}


def test_every_case_parses():
    for case in CASES:
        _spec(*case)      # raises SpecError, with file:line:column, for a broken case


def check_against_keras(label, shape, layers, blocks):
    """The helper: check, build, compare with Keras, run one forward pass. Returns (report, model)."""
    spec = _spec(label, shape, layers, blocks)
    report = infer(spec)
    assert report.valid, "\n".join(str(p) for p in report.errors)
    model = build_model(spec, report)
    assert tuple(model.output_shape[1:]) == report.output
    assert model.count_params() == report.params
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    assert trainable == report.trainable_params
    assert model.count_params() - trainable == report.non_trainable_params
    names = {layer.name for layer in model.layers}
    for row in report.rows:   # every layer the spec names carries that name in Keras and the reported shape
        assert row.name in names, f"no Keras layer named {row.name!r}"
        assert tuple(model.get_layer(row.name).output.shape[1:]) == row.output, row.name
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, *report.output)
    assert np.all(np.isfinite(y))
    return report, model


_checked: set = set()   # a case shared by several kinds (e.g. all activations) is built once


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_kind(kind):
    cases = CASES_BY_KIND[kind]
    assert cases, f"kind '{kind}' is registered but tests/test_kinds.py has no case using it: add one to CASES"
    for case in cases:
        if case[0] not in _checked:
            check_against_keras(*case)
            _checked.add(case[0])


def test_differences_lists_every_count_and_shape_that_disagrees():
    from cnnbuild.assemble import differences
    # the report of one spec against the model of another, with the same layer names:
    # A: conv 4·(3·3·3 + 1) = 112 → 6×6×4 → flatten 144 → dense 144·2 + 2 = 290: 402, all trainable
    # B: padding same keeps 8×8×4 and batchnorm adds 4·2 trainable + 4·2 not → flatten 256 → dense 256·2 + 2 = 514:
    #    112 + 16 + 514 = 642, 634 trainable, 8 not
    layers = "- conv: {{filters: 4, kernel: 3{}}}\n- flatten\n- dense: 2"
    report = infer(parse_spec(spec_text((8, 8, 3), layers.format(""))))
    model = build_model(parse_spec(spec_text((8, 8, 3), layers.format(", padding: same, batchnorm: true"))))
    assert differences(report, model) == [
        "parameters: the check counts 402, Keras 642",
        "trainable parameters: the check counts 402, Keras 634",
        "non-trainable parameters: the check counts 0, Keras 8",
        "layer 'conv_1': the check gives [6, 6, 4], Keras [8, 8, 4]",
        "layer 'flatten_1': the check gives [144], Keras [256]",
    ]
    assert differences(report, build_model(parse_spec(spec_text((8, 8, 3), layers.format(""))))) == []


# --- argument rules: refused exactly when Keras refuses ----------------------------------

STRIDE_AND_DILATION = {   # each kind with both arguments, and its Keras layer
    "conv": ("Conv2D", {"filters": 2}), "depthwise_conv": ("DepthwiseConv2D", {}),
    "separable_conv": ("SeparableConv2D", {"filters": 2}), "conv_transpose": ("Conv2DTranspose", {"filters": 2}),
}


def test_stride_with_dilation_is_refused_exactly_where_keras_refuses_it():
    import dataclasses

    import keras
    both = {kind for kind, cls in REGISTRY.items() if {"stride", "dilation"} <= {f.name for f in dataclasses.fields(cls)}}
    assert both == set(STRIDE_AND_DILATION), "a kind with stride and dilation: add its Keras layer to the table"
    for kind, (keras_class, extra) in STRIDE_AND_DILATION.items():
        try:
            getattr(keras.layers, keras_class)(kernel_size=3, strides=2, dilation_rate=2, **extra)(keras.Input((11, 11, 3)))
            keras_takes_it = True
        except ValueError as e:
            assert "dilation_rate" in str(e)
            keras_takes_it = False
        arguments = ", ".join(f"{k}: {v}" for k, v in extra.items())
        text = spec_text((11, 11, 3), f"- {kind}: {{{arguments + ', ' if arguments else ''}kernel: 3, stride: 2, dilation: 2}}")
        if keras_takes_it:
            assert infer(parse_spec(text)).valid, kind
        else:
            with pytest.raises(SpecError, match=f"Keras's {kind} does not support both at once"):
                parse_spec(text)


def test_activation_alpha_only_where_it_means_something():
    # leaky_relu's negative slope and elu's scale; Keras's other activations take no alpha
    for function in ("leaky_relu", "elu"):
        parse_spec(spec_text((4, 4, 1), f"- activation: {{function: {function}, alpha: 0.3}}"))
    with pytest.raises(SpecError, match=r"spec>:4:41: layers\[0\]\.activation\.alpha: alpha 0.3 has no effect on relu"):
        parse_spec(spec_text((4, 4, 1), "- activation: {function: relu, alpha: 0.3}"))


# --- values, worked out by hand -------------------------------------------------------

def _model(shape, layers, blocks="", extra=""):
    spec = parse_spec(spec_text(shape, layers, blocks, extra))
    report = infer(spec)
    assert report.valid, "\n".join(str(p) for p in report.errors)
    return build_model(spec, report), report


def _run(model, x):
    return np.asarray(model(np.asarray(x, dtype="float32"), training=False))


def test_leaky_relu_default_alpha_is_the_seeds_0_1():
    # the seeds' Leaky ReLU = max(0.1x, x): f(−1) = −0.1, whichever way the spec asks for it
    for layers in ("- leaky_relu", "- activation: leaky_relu", "- activation: {function: leaky_relu}",
                   "- conv: {filters: 1, kernel: 1, bias: false, initializer: ones, activation: leaky_relu}",
                   "- flatten\n- dense: {units: 1, bias: false, initializer: ones, activation: leaky_relu}"):
        model, _ = _model((1, 1, 1), layers)
        np.testing.assert_allclose(_run(model, [[[[-1.0]]]]).ravel(), [-0.1], rtol=1e-6, err_msg=layers)
        np.testing.assert_allclose(_run(model, [[[[2.0]]]]).ravel(), [2.0], rtol=1e-6, err_msg=layers)
    for layers, slope in (("- leaky_relu: 0.3", 0.3), ("- leaky_relu: {alpha: 0.05}", 0.05),
                          ("- activation: {function: leaky_relu, alpha: 0.2}", 0.2)):
        model, _ = _model((1, 1, 1), layers)
        np.testing.assert_allclose(_run(model, [[[[-1.0]]]]).ravel(), [-slope], rtol=1e-6, err_msg=layers)


def test_elu_relu6_and_other_activations_values():
    x = np.array([-1.0, 0.5, 9.0], dtype="float32").reshape(1, 1, 3, 1)
    expected = {
        "elu": [math.exp(-1) - 1, 0.5, 9.0],                 # α(eˣ − 1), α = 1
        "elu: 2.0": [2 * (math.exp(-1) - 1), 0.5, 9.0],
        "relu": [0.0, 0.5, 9.0],
        "relu6": [0.0, 0.5, 6.0],
        "sigmoid": [1 / (1 + math.e), 1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(-9))],
        "tanh": [math.tanh(-1), math.tanh(0.5), math.tanh(9)],
        "swish": [-1 / (1 + math.e), 0.5 / (1 + math.exp(-0.5)), 9 / (1 + math.exp(-9))],
    }
    for layer, values in expected.items():
        model, _ = _model((1, 3, 1), f"- {layer}")
        np.testing.assert_allclose(_run(model, x).ravel(), values, rtol=1e-5, err_msg=layer)


def test_maxout_takes_the_max_of_consecutive_pieces():
    model, report = _model((1, 1, 4), "- maxout: 2")
    assert report.output == (1, 1, 2)
    np.testing.assert_allclose(_run(model, [[[[1.0, -3.0, -5.0, 2.0]]]]).ravel(), [1.0, 2.0])


def test_sum_pool_is_average_times_area():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    model, _ = _model((4, 4, 1), "- sum_pool: 2")
    # windows: 0+1+4+5, 2+3+6+7, 8+9+12+13, 10+11+14+15
    np.testing.assert_allclose(_run(model, x)[0, :, :, 0], [[10, 18], [42, 50]])
    model, _ = _model((3, 3, 1), "- sum_pool: {size: 2, stride: 1, padding: [[0, 1], [0, 1]]}")
    x = np.ones((1, 3, 3, 1))
    np.testing.assert_allclose(_run(model, x)[0, :, :, 0], [[4, 4, 2], [4, 4, 2], [2, 2, 1]])   # padding adds zeros


def test_max_pool_explicit_padding_never_wins():
    x = -np.arange(1, 10, dtype="float32").reshape(1, 3, 3, 1)   # all negative: zero padding would win
    model, _ = _model((3, 3, 1), "- max_pool: {size: 2, stride: 2, padding: [[1, 0], [1, 0]]}")
    np.testing.assert_allclose(_run(model, x)[0, :, :, 0], [[-1, -2], [-4, -5]])


def test_avg_pool_explicit_padding_counts_zeros():
    model, _ = _model((2, 2, 1), "- avg_pool: {size: 2, stride: 1, padding: [[0, 1], [0, 1]]}")
    np.testing.assert_allclose(_run(model, np.ones((1, 2, 2, 1)))[0, :, :, 0], [[1, 0.5], [0.5, 0.25]])


def test_reflect_and_symmetric_padding_values():
    x = np.array([1, 2, 3], dtype="float32").reshape(1, 1, 3, 1)
    model, _ = _model((1, 3, 1), "- pad: {padding: [[0, 0], [2, 1]], mode: reflect}")
    np.testing.assert_allclose(_run(model, x)[0, 0, :, 0], [3, 2, 1, 2, 3, 2])
    model, _ = _model((1, 3, 1), "- pad: {padding: [[0, 0], [2, 1]], mode: symmetric}")
    np.testing.assert_allclose(_run(model, x)[0, 0, :, 0], [2, 1, 1, 2, 3, 3])
    # a 1×3 all-ones kernel over reflect padding 1: [2+1+2, 1+2+3, 2+3+2]
    model, _ = _model((1, 3, 1), "- conv: {filters: 1, kernel: [1, 3], padding: [0, 1], padding_mode: reflect, "
                                 "bias: false, initializer: ones}")
    np.testing.assert_allclose(_run(model, x)[0, 0, :, 0], [5, 6, 7])


def test_dilated_kernel_taps_are_spaced():
    x = np.zeros((1, 1, 5, 1), dtype="float32")
    x[0, 0, [0, 2, 4], 0] = [1, 10, 100]
    x[0, 0, [1, 3], 0] = 1000
    model, report = _model((1, 5, 1), "- conv: {filters: 1, kernel: [1, 3], dilation: 2, bias: false, initializer: ones}")
    assert report.output == (1, 1, 1)          # (5 − 5 + 0)/1 + 1
    np.testing.assert_allclose(_run(model, x).ravel(), [111])   # taps at 0, 2, 4 only


def test_connections_read_only_their_maps():
    model, report = _model((3, 3, 3), "- conv: {filters: 2, kernel: 3, bias: false, initializer: ones, connections: [[0], [1, 2]]}")
    assert report.params == 3 * 3 * 3          # F·F·(1 + 2 connections), no bias
    x = np.zeros((1, 3, 3, 3), dtype="float32")
    x[..., 0], x[..., 1], x[..., 2] = 1, 10, 100
    np.testing.assert_allclose(_run(model, x).ravel(), [9, 9 * 110])


def test_batchnorm_statistics_are_not_trainable():
    for layers, channels in (("- conv: {filters: 4, kernel: 3, batchnorm: true}", 4),
                             ("- flatten\n- dense: {units: 5, batchnorm: true}", 5)):
        model, report = _model((5, 5, 3), layers)
        assert report.non_trainable_params == 2 * channels      # moving mean and variance
        bn = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
        assert len(bn) == 1 and sum(math.prod(w.shape) for w in bn[0].non_trainable_weights) == 2 * channels


def test_max_unpool_puts_values_back_at_the_max():
    x = np.array([[1, 5], [3, 2]], dtype="float32").reshape(1, 2, 2, 1)
    model, _ = _model((2, 2, 1), "- max_pool: {name: p, size: 2}\n- max_unpool: p")
    np.testing.assert_allclose(_run(model, x)[0, :, :, 0], [[0, 5], [0, 0]])


def test_squeeze_and_excitation_block_multiplies_with_its_own_layer():
    blocks = """
        se:
          params: {channels: required}
          layers:
            - conv: {name: features, filters: $channels, kernel: 1, bias: false, initializer: ones}
            - global_max_pool: {keepdims: true}
            - multiply: {with: [features]}
        """
    model, report = _model((2, 2, 1), "- se: {name: a, channels: 2}\n- se: {name: b, channels: 2}", blocks)
    assert {"a_features", "b_features", "a_multiply_1", "b"} <= {layer.name for layer in model.layers}
    # block a: features = x copied to 2 maps; · max(x) = 4 → 4x. Block b: its 1×1 conv sums
    # the 2 maps (8x), · max (32) → 256x.
    x = np.array([[1, 2], [3, 4]], dtype="float32").reshape(1, 2, 2, 1)
    np.testing.assert_allclose(_run(model, x)[0, :, :, 0], 256 * x[0, :, :, 0])


def test_repeat_index_substitutes_each_copy():
    model, report = _model((4, 4, 1), "- repeat: {times: 3, layers: [{conv: {name: c, filters: '${index * 2}', kernel: 1}}]}")
    assert [model.get_layer(f"repeat_1_{i}_c").filters for i in (1, 2, 3)] == [2, 4, 6]
    assert report.params == (1 * 2 + 2) + (2 * 4 + 4) + (4 * 6 + 6)


def test_rounding_floor_warns_with_rows_and_columns_dropped():
    for extra, layer in (("rounding: floor\n", "- conv: {filters: 1, kernel: 3, stride: 3}"),
                         ("", "- conv: {filters: 1, kernel: 3, stride: 3, rounding: floor}")):
        report = infer(parse_spec(spec_text((7, 7, 1), layer, extra=extra), "r.yaml"))
        assert report.valid and report.output == (2, 2, 1)          # ⌊(7 − 3)/3⌋ + 1 = 2
        [warning] = report.warnings                                  # height and width alike: one warning
        assert warning.message == ("conv 'conv_1': height and width: (7 − 3 + 2·0)/3 + 1 = 2.33; rounding: floor keeps 2 "
                                   "and leaves 1 row and 1 column unread")      # (7 − 3) mod 3 = 1
        assert warning.where.line == 4 + extra.count("\n")          # the conv's line
    # a height and width that fail differently are two findings: (7 − 3)/3 leaves 1 row, (8 − 3)/3 leaves 2 columns
    report = infer(parse_spec(spec_text((7, 8, 1), "- conv: {filters: 1, kernel: 3, stride: 3}", extra="rounding: floor\n")))
    assert [w.message.split(": ", 1)[1] for w in report.warnings] == [
        "height: (7 − 3 + 2·0)/3 + 1 = 2.33; rounding: floor keeps 2 and leaves 1 row unread",
        "width: (8 − 3 + 2·0)/3 + 1 = 2.67; rounding: floor keeps 2 and leaves 2 columns unread"]
    report = infer(parse_spec(spec_text((7, 7, 1), "- conv: {filters: 1, kernel: 3, stride: 3, rounding: exact}",
                                        extra="rounding: floor\n")))
    assert not report.valid     # a layer's own rounding wins over the spec's


@pytest.mark.parametrize("layer, side", [("max_pool: 3", 3), ("avg_pool: {size: 3}", 3), ("sum_pool: [3, 3]", 3),
                                         ("max_pool: {size: 3, stride: 2}", 4), ("max_pool", 4)])
def test_pool_stride_defaults_to_its_size(layer, side):
    # 9×9: size 3 and stride 3 → (9 − 3)/3 + 1 = 3; stride 2 → (9 − 3)/2 + 1 = 4; default 2×2: ⌊…⌋ needs 8×8 → 4
    shape = (8, 8, 2) if layer == "max_pool" else (9, 9, 2)
    model, report = _model(shape, f"- {layer}")
    assert report.output == (side, side, 2) and report.params == 0
    assert model.output_shape == (None, side, side, 2)


def test_block_parameter_and_index_in_one_expression():
    blocks = """
        stage:
          params: {width: required}
          layers:
            - repeat:
                name: r
                times: 2
                layers: [{conv: {name: c, filters: "${index * width}", kernel: 1}}]
        """
    model, report = _model((4, 4, 1), "- stage: {name: s, width: 3}", blocks)
    assert [model.get_layer(f"s_r_{i}_c").filters for i in (1, 2)] == [3, 6]     # 1·3, 2·3
    assert report.params == (1 * 3 + 3) + (3 * 6 + 6)


# --- the modern kinds and arguments, values worked out here ------------------------------

def test_layer_norm_normalises_each_position_over_its_channels():
    model, report = _model((1, 2, 4), "- layer_norm: {epsilon: 1.0e-6}")
    assert report.params == report.trainable_params == 2 * 4      # gamma and beta per channel
    x = np.array([[[[1, 2, 3, 4], [0, 0, 0, 8]]]], dtype="float32")
    expected = (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-5, atol=1e-6)
    import keras
    assert model.get_layer("layer_norm_1").epsilon == 1e-6
    assert REGISTRY["layer_norm"]().epsilon == keras.layers.LayerNormalization().epsilon    # the default is Keras's


def test_layer_scale_is_one_factor_per_channel_starting_at_init():
    model, report = _model((2, 2, 3), "- layer_scale: {init: 1.0e-6}")
    [gamma] = model.get_layer("layer_scale_1").weights
    assert tuple(gamma.shape) == (3,) and report.trainable_params == 3
    np.testing.assert_allclose(gamma.numpy(), [1e-6] * 3)
    np.testing.assert_allclose(_run(model, np.full((1, 2, 2, 3), 2.0)), np.full((1, 2, 2, 3), 2e-6), rtol=1e-6)


def test_initializers_with_arguments_reach_keras():
    model, _ = _model((3, 3, 1), "- conv: {filters: 1, kernel: 3, bias: false, initializer: {name: constant, value: 0.5}}")
    np.testing.assert_allclose(_run(model, np.ones((1, 3, 3, 1))).ravel(), [4.5])     # 9 · 0.5
    model, _ = _model((8, 8, 16), "- conv: {filters: 64, kernel: 3, initializer: {name: variance_scaling, scale: 2.0, "
                                  "mode: fan_out, distribution: truncated_normal}}")
    kernel = model.get_layer("conv_1").kernel.numpy()
    # fan_out = 3·3·64 = 576: a normal of std √(2/576) ≈ 0.059, truncated at 2 std (Keras rescales by 0.8796)
    assert np.abs(kernel).max() <= 2 * np.sqrt(2 / 576) / 0.87962566103423978 + 1e-6
    assert 0.04 < kernel.std() < 0.07
    with pytest.raises(SpecError, match="initializer constant takes no 'scale'"):
        parse_spec(spec_text((3, 3, 1), "- conv: {filters: 1, kernel: 3, initializer: {name: constant, scale: 2.0}}"))


def test_residual_scale_adds_a_fraction_of_the_body():
    model, _ = _model((1, 1, 1), "- residual: {body: [{conv: {filters: 1, kernel: 1, bias: false, initializer: ones}}], scale: 0.17}")
    np.testing.assert_allclose(_run(model, [[[[2.0]]]]).ravel(), [2.0 + 0.17 * 2.0], rtol=1e-6)


def test_drop_path_drops_whole_samples_while_training_only():
    model, report = _model((4, 4, 2), "- residual: {body: [{conv: {filters: 2, kernel: 1, bias: false, initializer: ones}}], "
                                      "drop_path: 0.5}")
    x = np.ones((64, 4, 4, 2), dtype="float32")
    # body = 2 (two ones summed) everywhere; inference: 1 + 2
    np.testing.assert_allclose(_run(model, x), np.full(x.shape, 3.0))
    trained = np.asarray(model(x, training=True))
    per_sample = trained.reshape(64, -1)
    assert np.all(per_sample == per_sample[:, :1])          # one decision per sample, not per element
    assert set(np.unique(per_sample[:, 0]).tolist()) == {1.0, 5.0}    # dropped: 1; kept: 1 + 2 / (1 − 0.5)
    assert report.rows[0].rule.endswith("body dropped with p = 0.5 while training")


def test_make_divisible_rounds_as_keras_applications_does():
    from keras.src.applications.mobilenet_v2 import _make_divisible
    blocks = """
        c:
          params: {width: required}
          layers: [{conv: {name: c, filters: "${make_divisible(width, 8)}", kernel: 1}}]
        """
    for width in ("16 * 4.5", "32 * 0.35", "96 * 0.75", "3", "100", "1280 * 1.3"):
        model, _ = _model((1, 1, 1), f"- c: {{name: b, width: '${{{width}}}'}}", blocks)
        assert model.get_layer("b_c").filters == _make_divisible(eval(width), 8), width   # eval: the test's own arithmetic


def test_block_defaults_use_earlier_parameters_and_lists_substitute_whole():
    blocks = """
        cbn:
          params: {kernel: required, pad: "${(kernel - 1) // 2}"}
          layers: [{conv: {name: c, filters: 1, kernel: $kernel, padding: $pad}}]
        asym:
          params: {kernel: [1, 7]}
          layers: [{conv: {name: c, filters: 1, kernel: $kernel, padding: same}}]
        """
    model, report = _model((9, 9, 1), "- cbn: {name: a, kernel: 5}\n- asym: {name: b}\n- asym: {name: d, kernel: [7, 1]}", blocks)
    assert model.get_layer("a_c").kernel_size == (5, 5) and report.rows[1].output == (9, 9, 1)   # pad 2 keeps 9
    assert model.get_layer("b_c").kernel_size == (1, 7) and model.get_layer("d_c").kernel_size == (7, 1)
    with pytest.raises(SpecError, match=r"spec>:5:37: blocks\.cbn\.params\.pad: unknown parameter 'kernl'"):
        parse_spec(spec_text((9, 9, 1), "- cbn: {kernel: 3}", """
            cbn:
              params: {kernel: required, pad: "${(kernl - 1) // 2}"}
              layers: [{conv: {filters: 1, kernel: $kernel, padding: $pad}}]
            """))


def test_a_block_with_two_inputs_reads_them_by_their_declared_names():
    blocks = """
        diff:
          inputs: [p, x]
          layers:
            - conv: {name: neg, filters: 1, kernel: 1, bias: false, initializer: {name: constant, value: -1.0}, inputs: [p]}
            - add: {inputs: [x, neg]}
        """
    model, _ = _model((1, 1, 1), "- conv: {name: a, filters: 1, kernel: 1, bias: false, initializer: {name: constant, value: 3.0}}\n"
                                 "- diff: {inputs: [input, a]}", blocks)
    np.testing.assert_allclose(_run(model, [[[[2.0]]]]).ravel(), [6.0 - 2.0])      # x = 3·2, minus p = 2
    with pytest.raises(SpecError, match="diff reads 2 inputs, got 1"):
        parse_spec(spec_text((1, 1, 1), "- diff: {}", blocks))


def test_keras_padding_layer_names_are_refused_only_where_a_layer_builds_one():
    # Keras's ResNet50V2 names its padding 'pool1_pad' before the pool 'pool1', which pads nothing
    model, _ = _model((16, 16, 3), "- pad: {name: pool1_pad, padding: 1}\n- max_pool: {name: pool1, size: 3, stride: 2, "
                                   "rounding: floor}\n- conv: {name: c, filters: 2, kernel: 1, activation: relu}\n"
                                   "- relu: {name: c_relu}")    # c's relu is fused into it: no Keras layer c_relu
    assert {"pool1_pad", "pool1", "c", "c_relu"} <= {layer.name for layer in model.layers}
    # a pool with explicit padding does build 'pool1_pad': then the name is taken
    with pytest.raises(SpecError, match="name 'pool1_pad' is reserved for the pad layer that 'pool1' may build"):
        parse_spec(spec_text((16, 16, 3), "- pad: {name: pool1_pad, padding: 1}\n"
                                          "- max_pool: {name: pool1, size: 3, stride: 2, padding: 1, rounding: floor}"))


def test_a_parameter_may_name_the_layer_a_block_reads():
    blocks = """
        from_named:
          params: {source: required, sizes: {kernel: 1, filters: 2}}
          layers: [{conv: {name: c, filters: 2, kernel: 1, inputs: [$source]}}, {add: {with: [$source]}}]
        """
    model, report = _model((4, 4, 2), "- conv: {name: a, filters: 2, kernel: 1}\n- conv: {filters: 2, kernel: 3}\n"
                                      "- from_named: {name: u, source: a}", blocks)
    assert report.rows[-1].output == (4, 4, 2)                 # read a (4×4), not the 2×2 conv before the use
    assert model.get_layer("u_c").input.name == model.get_layer("a").output.name


# ── what the network ends in: the check's answer against the built Keras model ───────────────
ROOT = Path(__file__).resolve().parent.parent
ZOO_SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "cnnbuild" / "zoo").glob("*.yaml"))
TINY_TOP = ("name: tiny\ninput: [8, 8, 4]\nlayers:\n  - conv: {filters: 4, kernel: 3, activation: relu}\n"
            "  - global_avg_pool\n  - dense: {units: 3, activation: softmax}\n")
ENDINGS = {   # the spec's last entries (after a conv on an 8×8×1 input) → what the check must say it ends in
    "dense softmax": ("- flatten\n- dense: {units: 10, activation: softmax}", "softmax"),
    "dense sigmoid": ("- flatten\n- dense: {units: 1, activation: sigmoid}", "sigmoid"),
    "conv tanh": ("- conv: {filters: 3, kernel: 1, activation: tanh}", "tanh"),
    "tanh kind, then reshape": ("- tanh\n- reshape: [-1]", "tanh"),
    "linear dense": ("- flatten\n- dense: 10", None),
    "softmax, then activation linear": ("- flatten\n- dense: {units: 4, activation: softmax}\n- activation: linear",
                                        "softmax"),
    "softmax, then dropout": ("- flatten\n- dense: {units: 4, activation: softmax}\n- dropout: 0.5", "softmax"),
    "relu after softmax": ("- flatten\n- dense: {units: 4, activation: softmax}\n- relu", "relu"),
    "batchnorm then softmax": ("- conv: {filters: 4, kernel: 1, batchnorm: true, activation: softmax}", "softmax"),
    "sigmoid, then max_pool": ("- sigmoid\n- max_pool: 2", "sigmoid"),
    "block use": ("- head", "softmax"),
    "repeat": ("- flatten\n- repeat: {times: 2, layers: [{dense: {units: 4, activation: tanh}}]}", "tanh"),
    "residual, linear sum": ("- residual: {body: [{conv: {filters: 4, kernel: 3, padding: same, activation: tanh}}]}",
                             None),
    "residual with activation": ("- residual: {body: [{conv: {filters: 4, kernel: 3, padding: same}}], "
                                 "activation: sigmoid}", "sigmoid"),
    "concat": ("- concat: {with: [input]}", None),
    "backbone with top": ("- backbone: {spec: tiny.yaml, include_top: true}", "softmax"),
    "backbone without top": ("- backbone: {spec: tiny.yaml}", "relu"),
}
HEAD_BLOCK = "head:\n  layers:\n    - flatten\n    - dense: {units: 5, activation: softmax}\n"


def keras_output_activation(model):
    """What a Keras model's output comes from, read from Keras's own layer configs: through
    nested models, Identity and the layers that only move, pick or drop values (this test's
    own list), to a Softmax layer, an activation layer, or a layer's `activation` argument."""
    import keras
    layers = keras.layers
    moving = (layers.Identity, layers.Flatten, layers.Reshape, layers.Dropout, layers.SpatialDropout2D,
              layers.Cropping2D, layers.UpSampling2D, layers.MaxPooling2D, layers.AveragePooling2D,
              layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)
    own_layers = {layers.Softmax: "softmax", layers.LeakyReLU: "leaky_relu", layers.ELU: "elu"}
    tensor = model.outputs[0]
    while True:
        layer, node, index = tensor._keras_history
        if isinstance(layer, keras.Model):
            tensor = layer.outputs[index]
            continue
        if type(layer) in own_layers:
            return own_layers[type(layer)]
        if isinstance(layer, layers.ReLU):
            return "relu6" if layer.get_config()["max_value"] == 6 else "relu"
        activation = layer.get_config().get("activation")
        activation = activation if isinstance(activation, str) else None
        if activation not in (None, "linear"):
            return {"hard_silu": "hard_swish"}.get(activation, activation)
        if not (isinstance(layer, moving) or isinstance(layer, layers.Activation) and activation == "linear"):
            return None
        tensor = layer._inbound_nodes[node].input_tensors[0]


def assert_ends_in(spec, expected="any"):
    """The check's answer equals Keras's own (and `expected`, where given), the built model's
    numbers lie in that activation's range, and export's view of the Keras graph agrees."""
    from cnnbuild.assemble.model import ends_in_probabilities
    report = infer(spec)
    model = build_model(spec, report)
    answer = report.output_activation
    assert answer == keras_output_activation(model)
    if expected != "any":
        assert answer == expected
    out = np.asarray(model(np.random.default_rng(0).uniform(0, 1, (2, *spec.input)).astype("float32")))
    if answer == "softmax":
        np.testing.assert_allclose(out.sum(axis=-1), 1, atol=1e-4)
    elif answer == "sigmoid":
        assert out.min() >= 0 and out.max() <= 1
    elif answer == "tanh":
        assert out.min() >= -1 and out.max() <= 1
    elif answer in ("relu", "relu6"):
        assert out.min() >= 0
    assert ends_in_probabilities(model) is report.ends_in_probabilities


@pytest.mark.parametrize("case", sorted(ENDINGS))
def test_output_activation_is_what_the_built_model_ends_in(case, tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_TOP)
    layers, expected = ENDINGS[case]
    text = spec_text((8, 8, 1), "- conv: {filters: 4, kernel: 3, padding: same}\n" + layers, HEAD_BLOCK)
    (tmp_path / "net.yaml").write_text(text)
    from cnnbuild import load_spec
    assert_ends_in(load_spec(tmp_path / "net.yaml"), expected)


@pytest.mark.parametrize("path", ZOO_SPECS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_zoo_spec_ends_in_what_its_model_ends_in(path):
    from cnnbuild import load_spec
    spec = load_spec(path)
    from cnnbuild.families import of_spec
    family = of_spec(spec)
    for _, network, _ in family.networks(spec, family.check(spec)):
        assert_ends_in(network)


# ── the walker contract (layers/walk.py): what `ctx` holds, on both sides ────────────────────
def test_both_walkers_provide_every_attribute_of_the_contract():
    import keras

    from cnnbuild.assemble.model import _Builder
    from cnnbuild.check.report import Report, _Engine
    from cnnbuild.layers import keras_layers
    from cnnbuild.layers.walk import BuildContext, CheckContext, attributes
    spec = parse_spec(spec_text((8, 8, 1), "- flatten"))
    engine = _Engine(spec, Report(spec.name, spec.input, None))
    builder = _Builder(keras, keras_layers, keras.Input((8, 8, 1)))
    for ctx, protocol in ((engine, CheckContext), (builder, BuildContext)):
        missing = sorted(a for a in attributes(protocol) if not (hasattr(type(ctx), a) or a in vars(ctx)))
        assert not missing, f"{type(ctx).__name__} lacks {missing} of {protocol.__name__}"


def ctx_uses(function) -> set:
    """The attributes of `ctx` a function's code reads (`ctx.name`, `ctx.run(...)`)."""
    import ast
    return {node.attr for node in ast.walk(function) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "ctx"}


def test_kinds_use_only_what_the_contract_gives():
    """Every `infer` in layers/ reads of ctx only CheckContext's attributes, every `build`
    only BuildContext's, and helpers (which either may call) only their union."""
    import ast

    from cnnbuild.layers.walk import BuildContext, CheckContext, attributes
    check, build = attributes(CheckContext), attributes(BuildContext)
    layers = Path(__file__).resolve().parent.parent / "cnnbuild" / "layers"
    wrong = []
    for path in sorted(layers.glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, (ast.FunctionDef, ast.Lambda)):
                continue
            name = getattr(function, "name", "<lambda>")
            allowed = check if name.startswith(("infer", "_infer")) else build if name == "build" else check | build
            wrong += [f"{path.name}: {name} uses ctx.{a}" for a in sorted(ctx_uses(function) - allowed)]
    assert not wrong
    assert ctx_uses(ast.parse("def build(ins, ctx):\n    return ctx.keras, ctx.env")) == {"keras", "env"}

"""`cnnbuild draw`: the SVG is well-formed with a node per layer and the shapes on its
edges, inception branches sit side by side, residual shortcuts and `with:` skips are drawn,
the PNG is a real picture, and nothing imports TensorFlow.

The expected values come from outside the code drawn: shapes and counts from the seeds'
arithmetic (written beside them), titles as a reader would write them, and the layer
drawn red is the one the test broke on purpose."""
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from cnnbuild.cli import main
from cnnbuild.layers.base import REGISTRY
from cnnbuild.views.draw import CROSS, SKIP, draw
from cnnbuild.views.draw.canvas import ERROR, LABEL, STYLES
from cnnbuild.parse import load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
DRAW_SPECS = ROOT / "tests" / "specs" / "draw"
SVG = "{http://www.w3.org/2000/svg}"


def drawn(spec, tmp_path, name="net.svg"):
    """Draw `spec` (a Spec or a path) to SVG; returns the parsed root and the report."""
    spec = spec if not isinstance(spec, (str, Path)) else load_spec(spec)
    out = tmp_path / name
    report = draw(spec, out)
    return ET.parse(out).getroot(), report


def layer_groups(root):
    """data-layers of every drawn layer → its <g> element."""
    return {name: g for g in root.iter(f"{SVG}g") if g.get("class") == "layer"
            for name in g.get("data-layers").split()}


def texts(root):
    return [t.text for t in root.iter(f"{SVG}text")]


def first_rect(group):
    rect = group.find(f"{SVG}rect")
    return float(rect.get("x")), float(rect.get("y"))


def edge_labels(root):
    """The shapes written on the column's edges, top to bottom."""
    found = [(float(t.get("y")), t.text) for t in root.iter(f"{SVG}text") if t.get("fill") == LABEL]
    return [text for _, text in sorted(found)]


def red_layers(root):
    """The layers whose own box is drawn with the error stroke."""
    return {name for g in root.iter(f"{SVG}g") if g.get("class") == "layer"
            for rect in [g.find(f"{SVG}rect")] if rect is not None and rect.get("stroke") == ERROR
            for name in g.get("data-layers").split()}


def test_lenet5_has_a_node_per_layer_and_every_shape_on_an_edge(tmp_path):
    spec = load_spec(ROOT / "specs" / "lenet5.yaml")
    root, _ = drawn(spec, tmp_path)
    groups = layer_groups(root)
    assert {layer.name for layer in spec.layers} <= set(groups)
    assert edge_labels(root) == [
        "32×32×1",     # the input
        "28×28×6",     # conv 5×5: 32 − 5 + 1 = 28, 6 filters
        "14×14×6",     # avg_pool 2: 28 / 2
        "10×10×16",    # conv 5×5: 14 − 5 + 1
        "5×5×16",      # avg_pool 2: 10 / 2
        "1×1×120",     # conv 5×5: 5 − 5 + 1
        "120",         # flatten: 1 · 1 · 120
        "84", "10",    # the dense layers' units
    ]
    ys = [first_rect(groups[layer.name])[1] for layer in spec.layers]
    assert ys == sorted(ys)                                  # top to bottom, in order
    assert [t for t in texts(root) if t.startswith("conv ")] == ["conv 5×5, 6", "conv 5×5, 16", "conv 5×5, 120"]


@pytest.mark.parametrize("name", ["googlenet", "resnet50", "resnet_small", "unet_small"])
def test_every_top_level_layer_is_drawn(name, tmp_path):
    spec = load_spec(DRAW_SPECS / f"{name}.yaml")
    root, report = drawn(spec, tmp_path)
    assert report.valid
    assert {layer.name for layer in spec.layers} <= set(layer_groups(root))


def test_inception_branches_sit_side_by_side(tmp_path):
    spec = parse_spec("""
name: fork
input: [28, 28, 16]
layers:
  - inception:
      name: mix
      branches:
        - [conv: {filters: 8, kernel: 1, name: one}]
        - [conv: {filters: 8, kernel: 1, name: reduce}, conv: {filters: 16, kernel: 3, padding: same, name: three}]
        - [max_pool: {size: 3, stride: 1, padding: same, name: pool}]
        - []
""")
    root, _ = drawn(spec, tmp_path)
    groups = layer_groups(root)
    starts = [first_rect(groups[f"mix_{name}"]) for name in ("one", "reduce", "pool")]
    assert len({x for x, _ in starts}) == 3                  # three columns …
    assert len({y for _, y in starts}) == 1                  # … on one row
    assert first_rect(groups["mix_three"])[1] > starts[1][1]  # the 3×3 under its reduction
    labels = texts(root)
    for shape in ("28×28×8", "28×28×16", "28×28×56"):        # branch outputs and the concat
        assert shape in labels
    assert "8 + 16 + 16 + 16 = 56 channels" in labels        # the empty branch passes 16 through


def test_googlenet_modules_are_frames_with_four_columns(tmp_path):
    root, _ = drawn(DRAW_SPECS / "googlenet.yaml", tmp_path)
    groups = layer_groups(root)
    columns = {first_rect(groups[f"inception3a_inception_1_{name}"])[0] for name in ("conv_1", "conv_2", "conv_4")}
    columns.add(first_rect(groups["inception3a_inception_1_max_pool_1"])[0])
    assert len(columns) == 4
    assert any(t.startswith("inception3a · inception_module") for t in texts(root))


def test_residual_shortcuts_are_arcs_and_projections_are_drawn(tmp_path):
    root, _ = drawn(DRAW_SPECS / "resnet_small.yaml", tmp_path)
    skips = [p for p in root.iter(f"{SVG}path") if p.get("stroke") == SKIP]
    assert len(skips) >= 3                                    # one per residual (two pieces around a projection)
    assert any(" C " in p.get("d") for p in skips)           # rounded: curves, not only straight lines
    labels = texts(root)
    assert "conv 1×1/2, 32" in labels                         # shortcut: auto's projection
    cross = [p for p in root.iter(f"{SVG}path") if p.get("stroke") == CROSS]
    assert len(cross) == 1                                    # add: {with: [pre]}


def test_unet_skips_are_edges_into_the_concats(tmp_path):
    root, _ = drawn(DRAW_SPECS / "unet_small.yaml", tmp_path)
    cross = [p for p in root.iter(f"{SVG}path") if p.get("stroke") == CROSS]
    assert len(cross) == 2
    labels = texts(root)
    assert "32×32×32" in labels and "64×64×16" in labels


def test_identical_blocks_in_a_row_are_drawn_once_with_a_count(tmp_path):
    spec = load_spec(DRAW_SPECS / "resnet50.yaml")
    root, _ = drawn(spec, tmp_path)
    groups = layer_groups(root)
    labels = texts(root)
    assert any(t.startswith("5× bottleneck") for t in labels)   # stage 4's five identity blocks
    assert groups["repeat_3_1_bottleneck_1"] is groups["repeat_3_5_bottleneck_1"]
    # 16 bottlenecks drawn as 8 frames
    frames = {id(g) for g in root.iter(f"{SVG}g") if g.get("data-kind") == "bottleneck"}
    assert len(frames) == 8


def test_png_is_a_real_picture(tmp_path):
    out = tmp_path / "lenet5.png"
    assert main(["draw", str(ROOT / "specs" / "lenet5.yaml"), "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 300 <= width <= 3000 and width < height <= 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["lenet5.png"]   # written atomically: no temporary left


def test_text_is_escaped(tmp_path):
    spec = parse_spec("""
name: escaped
input: [8, 8, 1]
blocks:
  b:
    params: {note: "<&>"}
    layers: [relu]
layers:
  - b
""")
    root, _ = drawn(spec, tmp_path)                           # parses: < and & were escaped
    assert any("note <&>" in t for t in texts(root))


def test_an_invalid_spec_is_drawn_with_the_failing_layer_in_red(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ninput: [7, 7, 1]\nlayers:\n  - conv: {filters: 2, kernel: 3, stride: 3}\n  - flatten\n")
    out = tmp_path / "bad.svg"
    assert main(["draw", str(path), "--out", str(out)]) == 1
    root = ET.parse(out).getroot()
    # conv 3×3 with stride 3 on 7 rows: (7 − 3) / 3 + 1 = 2.33, so the first layer fails
    assert red_layers(root) == {"conv_1"}
    assert "output height and width are not whole numbers" in capsys.readouterr().out
    assert any(t.startswith("invalid: 1 error") for t in texts(root))


def test_the_output_must_be_svg_or_png(tmp_path, capsys):
    assert main(["draw", str(ROOT / "specs" / "lenet5.yaml"), "--out", str(tmp_path / "net.pdf")]) == 2
    assert ".svg or .png" in capsys.readouterr().err


def test_draw_never_imports_tensorflow(tmp_path):
    code = ("import sys; from cnnbuild.views.draw import draw; from cnnbuild.parse import load_spec; "
            f"draw(load_spec({str(ROOT / 'specs' / 'lenet5.yaml')!r}), {str(tmp_path / 'x.png')!r}); "
            "from cnnbuild import spec_schema; spec_schema(); "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert (tmp_path / "x.png").stat().st_size > 1000


def test_the_summary_line_gives_the_seeds_parameter_count(tmp_path):
    root, _ = drawn(ROOT / "specs" / "lenet5.yaml", tmp_path)
    # LeNet-5: 6·(5·5·1 + 1) + 16·(5·5·6 + 1) + 120·(5·5·16 + 1) + 84·(120 + 1) + 10·(84 + 1)
    #        = 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706
    assert any(t.startswith("32×32×1 → 10 · 61,706 parameters · ") for t in texts(root))
    # multiply-adds: 28·28·6·25 + 10·10·16·150 + 120·400 + 120·84 + 84·10 = 416,520 → 416.5K
    assert any(t.endswith("· 416.5K multiply-adds") for t in texts(root))


def test_an_error_inside_a_composite_marks_that_composite(tmp_path):
    spec = parse_spec("""
name: uneven
input: [9, 9, 4]
layers:
  - inception:
      name: mix
      branches:
        - [conv: {filters: 2, kernel: 3, name: three}]
        - [conv: {filters: 2, kernel: 1, name: one}]
  - flatten
""")
    root, report = drawn(spec, tmp_path)
    # the branches give 9 − 3 + 1 = 7 and 9 rows: the inception's join fails, not its branches
    assert [p.layer for p in report.errors] == ["mix"]
    assert red_layers(root) == set()                          # the branches' boxes are not red …
    joins = [r for r in root.iter(f"{SVG}rect") if r.get("stroke") == ERROR]
    assert len(joins) == 1                                    # … the concat that joins them is


def test_an_error_of_the_whole_spec_marks_no_layer(tmp_path):
    spec = parse_spec("name: big\ninput: [8, 8, 1]\nbudget: {params: 10}\nlayers:\n  - conv: {filters: 4, kernel: 3}\n")
    root, report = drawn(spec, tmp_path)
    # 4·(3·3·1 + 1) = 40 parameters, over the budget of 10: an error of no layer
    assert [p.layer for p in report.errors] == [""]
    assert not any(r.get("stroke") == ERROR for r in root.iter(f"{SVG}rect"))


# Each kind's title and details as a reader writes them: (layers, input, title, details).
TITLES = [
    ("conv: {filters: 8, kernel: 3, stride: 2, batchnorm: true, activation: relu}", [16, 16, 4], "conv 3×3/2, 8",
     "batchnorm · relu · 328 params"),   # 8·(3·3·4 + 1) = 296, batchnorm 4·8 = 32 (γ, β, mean, variance)
    ("conv: {filters: 8, kernel: 3, dilation: 2, groups: 2}", [16, 16, 4], "conv 3×3, 8, dilation 2×2, groups 2",
     "152 params"),                      # 8·(3·3·2 + 1): each filter reads 4 / 2 maps
    ("conv: {filters: 4, kernel: 1, trainable: false}", [16, 16, 4], "conv 1×1, 4", "frozen · 20 params"),  # 4·(4 + 1)
    ("depthwise_conv: {kernel: 3, multiplier: 2}", [16, 16, 4], "depthwise_conv 3×3, ×2", "80 params"),  # 8·3·3 + 8
    ("separable_conv: {filters: 6, kernel: [3, 5], stride: [1, 2], padding: same}", [16, 16, 4],
     "separable_conv 3×5/1×2, 6", "90 params"),   # 3·5·4 + 4·6 + 6
    ("conv_transpose: {filters: 4, stride: 2}", [16, 16, 4], "conv_transpose 2×2/2, 4", "68 params"),  # 2·2·4·4 + 4
    ("max_pool: {size: 3, stride: 2}", [16, 16, 4], "max_pool 3×3/2", ""),
    ("avg_pool: 2", [16, 16, 4], "avg_pool 2×2/2", ""),
    ("global_avg_pool", [16, 16, 4], "global_avg_pool", ""),
    ("upsample: [1, 2]", [16, 16, 4], "upsample ×1×2", ""),
    ("upsample: 2", [16, 16, 4], "upsample ×2", ""),
    ("dropout: {rate: 0.25, spatial: true}", [16, 16, 4], "dropout 0.25 spatial", ""),
    ("activation: {function: elu}", [16, 16, 4], "elu", ""),
    ("leaky_relu", [16, 16, 4], "leaky_relu", ""),
    ("reshape: [8, -1]", [16, 16, 4], "reshape 8×-1", ""),
    ("maxout: 2", [16, 16, 4], "maxout 2", ""),
    ("batchnorm", [16, 16, 4], "batchnorm", "16 params"),   # γ, β, mean, variance of 4 channels
    ("dense: {units: 10, activation: softmax}", [1, 1, 12], "dense 10", "softmax · 130 params"),   # 10·(12 + 1)
    ("add: {with: [input]}", [16, 16, 4], "add", "sum of 2"),
    ("concat: {with: [input]}", [16, 16, 4], "concat", "4 + 4 = 8"),
    ("backbone: {application: MobileNetV2, freeze: 20}", [64, 64, 3], "backbone MobileNetV2", "first 20 frozen · "),
]


@pytest.mark.parametrize("layer, shape, title, details", TITLES, ids=[case[2] for case in TITLES])
def test_each_kind_is_titled_with_the_numbers_that_matter(layer, shape, title, details, tmp_path):
    spec = parse_spec(f"name: one\ninput: {shape}\nlayers:\n  - {layer}\n")
    root, _ = drawn(spec, tmp_path)
    lines = [t.text for t in layer_groups(root)[spec.layers[-1].name].iter(f"{SVG}text")]
    assert lines[0] == title
    assert (lines[1] if len(lines) > 1 else "").startswith(details), lines


def test_max_unpool_names_its_pool_and_reads_it_with_a_dashed_arc(tmp_path):
    spec = parse_spec("name: segnet\ninput: [8, 8, 2]\nlayers:\n  - max_pool: {size: 2, name: p}\n"
                      "  - conv: {filters: 2, kernel: 1}\n  - max_unpool: p\n")
    root, _ = drawn(spec, tmp_path)
    assert "max_unpool ← p" in texts(root)
    dashed = [p for p in root.iter(f"{SVG}path") if p.get("stroke") == CROSS and p.get("stroke-dasharray")]
    assert len(dashed) == 1


def test_every_kind_has_a_colour():
    assert {cls.family for cls in REGISTRY.values()} <= set(STYLES)


def test_a_backbone_from_a_spec_is_framed_with_its_layers(tmp_path):
    backbone = ROOT / "tests" / "specs" / "good" / "small_backbone.yaml"
    spec = parse_spec(f"name: transfer\ninput: [8, 8, 3]\nlayers:\n  - backbone: {{spec: {backbone}, freeze: true}}\n"
                      "  - global_avg_pool\n  - dense: 3\n")
    root, report = drawn(spec, tmp_path)
    assert report.valid
    labels = texts(root)
    assert any(t.startswith("backbone small_backbone.yaml · frozen") for t in labels)
    assert "conv 3×3, 4" in labels and "4×4×6" in labels


def test_a_projection_shortcut_is_drawn_as_the_convolution_it_is(tmp_path):
    spec = parse_spec("""
name: projections
input: [8, 8, 3]
layers:
  - residual:
      trainable: false
      body: [conv: {filters: 5, kernel: 3, stride: 2, padding: same}]
  - residual:
      body: [conv: {filters: 6, kernel: 3, padding: same, batchnorm: true}]
""")
    root, _ = drawn(spec, tmp_path)
    lines = texts(root)
    # 8×8×3 → 4×4×5: a 1×1 convolution with stride 8 / 4 = 2, 5·(3 + 1) = 20 parameters, no
    # batchnorm (frozen, its parameters count as non-trainable, but it has none)
    assert lines[lines.index("conv 1×1/2, 5") + 1] == "projection · 20 params"
    # 4×4×5 → 4×4×6: stride 1, with the body's batchnorm: 6·(5 + 1) + 4·6 = 60
    assert lines[lines.index("conv 1×1, 6") + 1] == "projection · batchnorm · 60 params"

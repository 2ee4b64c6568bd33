"""`cnnbuild draw`: the SVG is well-formed with a node per layer and the shapes on its
edges, inception branches sit side by side, residual shortcuts and `with:` skips are drawn,
the PNG is a real picture, and nothing imports TensorFlow."""
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from cnnbuild.cli import main
from cnnbuild.views.draw import CROSS, SKIP, draw, shape_text
from cnnbuild.check.report import infer
from cnnbuild.spec import load_spec, parse_spec

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


def test_lenet5_has_a_node_per_layer_and_every_shape_on_an_edge(tmp_path):
    spec = load_spec(ROOT / "specs" / "lenet5.yaml")
    root, report = drawn(spec, tmp_path)
    groups = layer_groups(root)
    assert {layer.name for layer in spec.layers} <= set(groups)
    labels = texts(root)
    for row in report.rows:
        assert shape_text(row.output) in labels, row.name
    assert shape_text(spec.input) in labels
    ys = [first_rect(groups[layer.name])[1] for layer in spec.layers]
    assert ys == sorted(ys)                                  # top to bottom, in order


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
    assert any(r.get("stroke") == "#dc2626" for r in root.iter(f"{SVG}rect"))
    assert "output height and width are not whole numbers" in capsys.readouterr().out


def test_the_output_must_be_svg_or_png(tmp_path, capsys):
    assert main(["draw", str(ROOT / "specs" / "lenet5.yaml"), "--out", str(tmp_path / "net.pdf")]) == 2
    assert ".svg or .png" in capsys.readouterr().err


def test_draw_never_imports_tensorflow(tmp_path):
    code = ("import sys; from cnnbuild.views.draw import draw; from cnnbuild.spec import load_spec; "
            f"draw(load_spec({str(ROOT / 'specs' / 'lenet5.yaml')!r}), {str(tmp_path / 'x.png')!r}); "
            "from cnnbuild.views.schema import spec_schema; spec_schema(); "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert (tmp_path / "x.png").stat().st_size > 1000


def test_the_report_drawn_is_the_static_one(tmp_path):
    spec = load_spec(DRAW_SPECS / "googlenet.yaml")
    _, report = drawn(spec, tmp_path)
    assert report.params == infer(spec).params


def test_a_backbone_from_a_spec_is_framed_with_its_layers(tmp_path):
    backbone = ROOT / "tests" / "specs" / "good" / "small_backbone.yaml"
    spec = parse_spec(f"name: transfer\ninput: [8, 8, 3]\nlayers:\n  - backbone: {{spec: {backbone}, freeze: true}}\n"
                      "  - global_avg_pool\n  - dense: 3\n")
    root, report = drawn(spec, tmp_path)
    assert report.valid
    labels = texts(root)
    assert any(t.startswith("backbone small_backbone.yaml · frozen") for t in labels)
    assert "conv 3×3, 4" in labels and "4×4×6" in labels

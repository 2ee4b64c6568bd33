"""`cnnbuild check`: the table, the --json document, exit statuses, and no TensorFlow."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnbuild.cli import main

from conftest import ROOT, SPECS

LENET = """\
name: lenet_like
input: [32, 32, 1]
layers:
  - conv: {filters: 6, kernel: 5, activation: tanh}
  - avg_pool: 2
  - residual:
      body:
        - conv: {filters: 6, kernel: 3, padding: 1, batchnorm: true}
  - flatten
  - dense: {units: 10, activation: softmax}
"""
FLOORED = "name: floored\ninput: [7, 7, 1]\nrounding: floor\nlayers:\n  - conv: {filters: 2, kernel: 3, stride: 3}\n"
BROKEN = "name: broken\ninput: [7, 7, 1]\nlayers:\n  - conv: {filters: 2, kernel: 3, stride: 3}\n  - conv: {filters: 2, kernel: 1, stride: 2}\n"
UNPARSABLE = "name: unparsable\ninput: [8, 8]\nlayers:\n  - conv: {filters: 2, kernel_size: 3}\n"

TOP_KEYS = {"name", "valid", "input", "output", "params", "spec_params", "variant", "trainable_params", "non_trainable_params", "macs",
            "activation_bytes", "layers", "errors", "warnings"}
LAYER_KEYS = {"path", "name", "kind", "input", "output", "params", "trainable_params", "non_trainable_params", "macs",
              "rule", "receptive_field", "children"}
PROBLEM_KEYS = {"file", "line", "column", "path", "message", "hint"}


def check(capsys, path, *options):
    status = main(["check", str(path), *options])
    out, err = capsys.readouterr()
    return status, out, err


def test_table_shows_each_rule_with_its_numbers(spec_text, capsys):
    status, out, err = check(capsys, spec_text(LENET))
    assert status == 0, err
    assert "(32 − 5 + 2·0)/1 + 1 = 28" in out        # the seeds' rule, with the numbers
    assert "(28 − 2 + 2·0)/2 + 1 = 14" in out
    assert "(14 − 3 + 2·1)/1 + 1 = 14" in out
    assert "32×32×1 → 28×28×6" in out
    assert "156" in out                               # 6 · (5·5·1 + 1)
    assert "\n  residual_1_conv_1" in out             # a composite's children are indented
    # totals: 156 + (6·(9·6 + 1) + 4·6 batchnorm) + (14·14·6·10 + 10) = 156 + 354 + 11,770
    assert "parameters 12,280 (trainable 12,268, non-trainable 12)" in out
    assert "ok" in out.splitlines()[-1]


def test_json_document_follows_the_documented_schema(spec_text, capsys):
    status, out, _ = check(capsys, spec_text(LENET), "--json")
    assert status == 0
    document = json.loads(out)
    assert TOP_KEYS <= set(document)
    assert document["name"] == "lenet_like" and document["valid"] is True
    assert document["input"] == [32, 32, 1] and document["output"] == [10]      # no batch axis
    assert document["params"] == 12_280 and document["trainable_params"] == 12_268
    assert document["non_trainable_params"] == 12
    assert isinstance(document["macs"], int) and document["macs"] > 0
    assert document["errors"] == [] and document["warnings"] == []
    layers = document["layers"]
    assert [l["name"] for l in layers] == ["conv_1", "avg_pool_1", "residual_1", "flatten_1", "dense_1"]  # top level, in order
    assert [l["path"] for l in layers] == [f"layers[{i}]" for i in range(5)]
    for layer in layers:
        assert set(layer) == LAYER_KEYS
    first = layers[0]
    assert (first["kind"], first["input"], first["output"], first["params"]) == ("conv", [32, 32, 1], [28, 28, 6], 156)
    assert first["macs"] == 28 * 28 * 6 * 5 * 5                                 # one multiply-add per weight per output
    assert first["receptive_field"] == [5, 5]
    assert sum(l["params"] for l in layers) == document["params"]


NESTED = """\
name: nested
input: [8, 8, 2]
layers:
  - repeat:
      times: 2
      layers:
        - residual:
            body:
              - conv: {filters: 2, kernel: 3, padding: same}
  - flatten
"""


def test_json_composites_carry_their_layers_as_children(spec_text, capsys):
    status, out, _ = check(capsys, spec_text(NESTED), "--json")
    assert status == 0
    layers = json.loads(out)["layers"]
    assert [l["name"] for l in layers] == ["repeat_1", "flatten_1"]         # `layers` stays the top level
    copies = layers[0]["children"]
    assert [c["name"] for c in copies] == ["repeat_1_1_residual_1", "repeat_1_2_residual_1"]
    convs = [c["children"] for c in copies]
    assert [[c["name"] for c in cs] for cs in convs] == [["repeat_1_1_residual_1_conv_1"], ["repeat_1_2_residual_1_conv_1"]]

    def rows(entries):
        for entry in entries:
            yield entry
            yield from rows(entry["children"])
    assert all(set(entry) == LAYER_KEYS for entry in rows(layers))           # one row schema at every depth
    assert layers[1]["children"] == [] and convs[0][0]["children"] == []
    # 2·(3·3·2 + 1) = 38 parameters per convolution; each composite counts its layers'
    assert convs[0][0]["params"] == 38 and copies[0]["params"] == 38 and layers[0]["params"] == 76
    assert convs[1][0]["receptive_field"] == [5, 5]                          # the second 3×3: 3 + 2


def test_json_has_the_same_keys_valid_invalid_or_unparsable(spec_text, capsys):
    documents = [json.loads(check(capsys, spec_text(text), "--json")[1]) for text in (LENET, BROKEN, UNPARSABLE)]
    assert [set(d) for d in documents] == [TOP_KEYS] * 3
    assert [d["valid"] for d in documents] == [True, False, False]
    assert documents[1]["params"] is None and documents[2]["activation_bytes"] is None   # not computed: null, not 0


def test_json_errors_and_warnings(spec_text, capsys):
    status, out, _ = check(capsys, spec_text(BROKEN, "broken.yaml"), "--json")
    assert status == 1
    document = json.loads(out)
    assert TOP_KEYS <= set(document) and document["valid"] is False
    assert len(document["errors"]) == 2     # both convolutions (each: height and width alike, one error)
    for error in document["errors"]:
        assert set(error) == PROBLEM_KEYS
        assert error["file"].endswith("broken.yaml") and error["hint"]
    assert [(e["line"], e["column"], e["path"]) for e in document["errors"]] == \
        [(4, 5, "layers[0]"), (5, 5, "layers[1]")]                             # lines and columns count from 1
    assert "height and width are not whole numbers: (7 − 3 + 2·0)/3 + 1 = 2.33" in document["errors"][0]["message"]
    assert "(2 − 1 + 2·0)/2 + 1 = 1.50" in document["errors"][1]["message"]    # ⌊2.33⌋ = 2 goes on

    status, out, _ = check(capsys, spec_text(FLOORED, "floored.yaml"), "--json")
    document = json.loads(out)
    assert status == 0 and document["valid"] and document["output"] == [2, 2, 2]
    assert [set(w) for w in document["warnings"]] == [PROBLEM_KEYS]
    assert "leaves 1 row and 1 column unread" in document["warnings"][0]["message"]


def test_json_for_a_spec_that_does_not_parse(spec_text, capsys):
    status, out, _ = check(capsys, spec_text(UNPARSABLE, "unparsable.yaml"), "--json")
    assert status == 1
    document = json.loads(out)
    assert TOP_KEYS <= set(document) and document["valid"] is False and document["layers"] == []
    places = {(e["line"], e["column"], e["path"]) for e in document["errors"]}
    assert places == {(2, 8, "input"), (4, 24, "layers[0].conv.kernel_size")}


def test_a_zoo_spec_warns_once_per_floored_layer(capsys):
    # ResNet-18 floors five layers, each alike in height and width: the stem's (224 − 7 + 2·3)/2 + 1 = 112.5,
    # its max pool's (112 − 3 + 2·1)/2 + 1 = 56.5, and the first 3×3/2 convolution of stages 2, 3 and 4
    status, out, err = check(capsys, SPECS / "resnet18.yaml")
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert status == 0 and len(warnings) == 5
    assert all(": height and width: " in line and "leaves 1 row and 1 column unread" in line for line in warnings)
    assert [line.split("= ")[1].split(";")[0] for line in warnings] == ["112.50", "56.50", "28.50", "14.50", "7.50"]


@pytest.mark.parametrize("text, status", [(LENET, 0), (FLOORED, 0), (BROKEN, 1), (UNPARSABLE, 1)])
def test_exit_status(spec_text, capsys, text, status):
    assert check(capsys, spec_text(text))[0] == status


def test_exit_status_2_for_unreadable_files(tmp_path, capsys):
    assert check(capsys, tmp_path / "nope.yaml")[0] == 2
    assert check(capsys, tmp_path)[0] == 2


def test_check_never_imports_tensorflow_or_keras(spec_text):
    # this spec, and every zoo spec (valid or not, the check must stay pure Python)
    paths = [str(spec_text(LENET))] + [str(p) for p in sorted(SPECS.glob("*.yaml"))]
    program = ("import sys; from cnnbuild.cli import main; "
               f"status = main(['check', {paths[0]!r}]); status_json = main(['check', {paths[0]!r}, '--json']); "
               "assert (status, status_json) == (0, 0), (status, status_json); "
               f"[main(['check', path]) for path in {paths[1:]!r}]; "
               "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')); "
               "assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_an_internal_error_is_one_paragraph_not_a_traceback(spec_text, monkeypatch, capsys):
    """The last-resort handler: a failure that is nobody's input error (here the builder itself
    breaks) becomes one paragraph, exit 1; CNNBUILD_DEBUG=1 lets the traceback through."""
    import cnnbuild.assemble

    def broken(*args, **kwargs):
        raise RuntimeError("builder broke")
    monkeypatch.setattr(cnnbuild.assemble, "build_model", broken)
    path = spec_text(LENET)
    monkeypatch.delenv("CNNBUILD_DEBUG", raising=False)
    assert main(["summary", str(path)]) == 1
    paragraph = [line for line in capsys.readouterr().err.splitlines() if "internal error" in line]
    assert len(paragraph) == 1
    assert paragraph[0].startswith("cnnbuild summary: internal error: RuntimeError: builder broke")
    assert "please report it with the spec" in paragraph[0] and "CNNBUILD_DEBUG=1" in paragraph[0]
    monkeypatch.setenv("CNNBUILD_DEBUG", "1")
    with pytest.raises(RuntimeError, match="builder broke"):
        main(["summary", str(path)])


def test_an_unwritable_picture_is_a_usage_error(spec_text, tmp_path, capsys):
    path = spec_text(LENET)
    (tmp_path / "file").write_text("")
    assert main(["draw", str(path), "--out", str(tmp_path / "file" / "net.svg")]) == 2   # a file where a folder should be
    err = capsys.readouterr().err
    assert f"cnnbuild draw: --out {tmp_path / 'file' / 'net.svg'}: cannot write the picture" in err


def test_summary_in_a_pipe_is_whole_and_compared_in_full(spec_text):
    # stdout is a pipe here, not a terminal: Keras's table must still have all three columns
    done = subprocess.run([sys.executable, "-m", "cnnbuild.cli", "summary", str(spec_text(LENET))],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line[:1] in "┏┃┡│├└"]
    assert table and all(line[-1] in "┓┃┩│┤┘" for line in table)             # no line cut short
    assert any("Param #" in line for line in table)
    assert any("Connected to" in line for line in table)                     # a graph, not a chain: four columns
    [conv] = [line for line in table if line.startswith("│ conv_1 (Conv2D)")]   # 6·(5·5·1 + 1) = 156 parameters
    assert [cell.strip() for cell in conv.split("│")[1:-1]] == ["conv_1 (Conv2D)", "(None, 28, 28, 6)", "156", "input[0][0]"]
    # the totals worked out in test_table_shows_each_rule_with_its_numbers, and the 5 top-level layers
    assert ("the static check and Keras agree: 12,280 parameters (12,268 trainable, 12 non-trainable), output [10], "
            "and the output shapes of all 5 top-level layers") in done.stdout


def test_python_m_cnnbuild_cli_runs(spec_text):
    done = subprocess.run([sys.executable, "-m", "cnnbuild.cli", "check", str(spec_text(LENET))],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and "(32 − 5 + 2·0)/1 + 1 = 28" in done.stdout


def test_json_even_for_an_unreadable_file(tmp_path, capsys):
    """--json promises one document: a missing file or a FIFO gets one too (exit 2)."""
    os.mkfifo(tmp_path / "fifo.yaml")
    for path in (tmp_path / "missing.yaml", tmp_path / "fifo.yaml"):
        assert main(["check", str(path), "--json"]) == 2
        document = json.loads(capsys.readouterr().out)
        assert document["valid"] is False and document["layers"] == []
        assert document["errors"][0]["file"] == str(path) and str(path) in document["errors"][0]["message"]


def test_json_valid_is_false_when_the_data_is_missing(tmp_path, capsys):
    """A well-formed spec whose data folder does not exist exits 1, and its document says so."""
    spec = tmp_path / "net.yaml"
    spec.write_text(f"{FLOORED}data: {{source: {tmp_path / 'no_such_folder'}}}\n")
    status, out, _ = check(capsys, spec, "--json")
    document = json.loads(out)
    assert status == 1 and document["valid"] is False
    assert "no_such_folder" in json.dumps(document["data_errors"])

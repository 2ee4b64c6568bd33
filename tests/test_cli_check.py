"""`cnnbuild check`: the table, the --json document, exit statuses, and no TensorFlow."""
from __future__ import annotations

import json
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

TOP_KEYS = {"name", "valid", "input", "output", "params", "trainable_params", "non_trainable_params", "macs", "layers",
            "errors", "warnings"}
LAYER_KEYS = {"path", "name", "kind", "input", "output", "params", "macs", "receptive_field"}
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
        assert LAYER_KEYS <= set(layer)
    first = layers[0]
    assert (first["kind"], first["input"], first["output"], first["params"]) == ("conv", [32, 32, 1], [28, 28, 6], 156)
    assert first["macs"] == 28 * 28 * 6 * 5 * 5                                 # one multiply-add per weight per output
    assert first["receptive_field"] == [5, 5]
    assert sum(l["params"] for l in layers) == document["params"]


def test_json_errors_and_warnings(spec_text, capsys):
    status, out, _ = check(capsys, spec_text(BROKEN, "broken.yaml"), "--json")
    assert status == 1
    document = json.loads(out)
    assert TOP_KEYS <= set(document) and document["valid"] is False
    assert len(document["errors"]) == 4     # height and width of both convolutions: all reported
    for error in document["errors"]:
        assert set(error) == PROBLEM_KEYS
        assert error["file"].endswith("broken.yaml") and error["hint"]
    assert [(e["line"], e["column"], e["path"]) for e in document["errors"]] == \
        [(4, 5, "layers[0]")] * 2 + [(5, 5, "layers[1]")] * 2                  # lines and columns count from 1
    assert "2.33" in document["errors"][0]["message"]

    status, out, _ = check(capsys, spec_text(FLOORED, "floored.yaml"), "--json")
    document = json.loads(out)
    assert status == 0 and document["valid"] and document["output"] == [2, 2, 2]
    assert [set(w) for w in document["warnings"]] == [PROBLEM_KEYS] * 2
    assert "leaves 1 row unread" in document["warnings"][0]["message"]


def test_json_for_a_spec_that_does_not_parse(spec_text, capsys):
    status, out, _ = check(capsys, spec_text(UNPARSABLE, "unparsable.yaml"), "--json")
    assert status == 1
    document = json.loads(out)
    assert TOP_KEYS <= set(document) and document["valid"] is False and document["layers"] == []
    places = {(e["line"], e["column"], e["path"]) for e in document["errors"]}
    assert places == {(2, 8, "input"), (4, 24, "layers[0].conv.kernel_size")}


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


def test_python_m_cnnbuild_cli_runs(spec_text):
    done = subprocess.run([sys.executable, "-m", "cnnbuild.cli", "check", str(spec_text(LENET))],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and "(32 − 5 + 2·0)/1 + 1 = 28" in done.stdout

"""Bad input: every spec in tests/specs/bad/ gives exactly the errors its `.expected` file
lists — each at its file:line:column and path, with a hint — and exit status 1, never a
traceback. Inputs that cannot live in the repository (a 1 MiB file, a directory, a missing
file) are made here; a small seeded fuzz test throws mutated zoo specs at the CLI.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnbuild.cli import main
from cnnbuild.errors import SpecError

from conftest import ROOT, SPECS

BAD = Path(__file__).parent / "specs" / "bad"
FIXTURES = sorted(BAD.glob("*.yaml"))


def expected(fixture: Path):
    """(exit status, [(line, column, path, message part, hint part)]) from FIXTURE.expected."""
    status, errors = None, []
    for raw in fixture.with_suffix(".expected").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("exit "):
            status = int(line.split()[1])
            continue
        place, message, hint = (part.strip() for part in line.split(" | "))
        position, path = place.split(" ", 1)
        row, column = (int(n) for n in position.split(":"))
        errors.append((row, column, "" if path == "-" else path, message, hint))
    return status, errors


def run_cli(*args, cwd=BAD):
    return subprocess.run([sys.executable, "-m", "cnnbuild.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_every_fixture_has_its_expected_errors():
    for fixture in FIXTURES:
        assert fixture.with_suffix(".expected").exists(), f"{fixture.name} has no .expected file"


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_bad_spec_reports_every_error_with_place_and_hint(fixture):
    status, wanted = expected(fixture)
    done = run_cli("check", fixture.name, "--json")
    assert "Traceback" not in done.stderr
    assert done.returncode == status, done.stderr
    document = json.loads(done.stdout)
    assert document["valid"] is False
    errors = document["errors"]
    for error in errors:
        assert error["file"] == fixture.name
        assert error["hint"], f"an error without a hint: {error}"
    found = [(e["line"], e["column"], e["path"]) for e in errors]
    for row, column, path, message, hint in wanted:
        matches = [e for e in errors if (e["line"], e["column"], e["path"]) == (row, column, path)
                   and message in e["message"] and hint in e["hint"]]
        assert matches, f"no error at {row}:{column} {path!r} with {message!r} / hint {hint!r}; got {errors}"
    assert len(errors) == len(wanted), f"expected {len(wanted)} errors, got {len(errors)}: {found}"


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_bad_spec_text_names_file_line_column_and_path(fixture, capsys):
    status, wanted = expected(fixture)
    assert main(["check", str(fixture)]) == status
    err = capsys.readouterr().err
    for row, column, path, message, hint in wanted:
        assert f"{fixture}:{row}:{column}: {path + ': ' if path else ''}" in err
        assert message in err and "hint: " in err and hint in err


def test_python_tag_is_never_executed():
    # the fixture's tag would call sys.exit(7); exit status 1 shows it was refused, not run
    assert run_cli("check", "python_tag.yaml").returncode == 1


# --- inputs made by the test ------------------------------------------------------

def test_file_over_the_size_cap(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: big\ninput: [8, 8, 1]\nlayers: [flatten]\n" + "# padding\n" * 120_000)
    done = run_cli("check", str(big))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{big}:1:1:" in done.stderr and "a spec may be at most 1,048,576" in done.stderr and "hint:" in done.stderr


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing.yaml", "no such file"),
    (lambda tmp: tmp, "is a directory, not a spec file"),
])
def test_unreadable_spec_exits_2(tmp_path, make, message):
    path = make(tmp_path)
    for extra in ((), ("--json",)):
        done = run_cli("check", str(path), *extra)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert message in done.stderr and str(path) in done.stderr


def test_budget_from_the_command_line(spec_text):
    # the seeds: a 100×100 image into 2,000 hidden units has 100·100·2000 + 2000 = 20,002,000 parameters;
    # activations: (10,000 + 10,000 + 2,000) values · 4 bytes = 88,000 bytes
    path = spec_text("name: wide\ninput: [100, 100, 1]\nlayers: [flatten, {dense: 2000}]\n")
    assert main(["check", str(path)]) == 0
    assert main(["check", str(path), "--max-params", "20002000", "--max-memory", "88000"]) == 0
    done = run_cli("check", str(path), "--max-params", "20001999", cwd=ROOT)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "the model has 20,002,000 parameters, over the budget of 20,001,999" in done.stderr
    assert "hint:" in done.stderr
    done = run_cli("check", str(path), "--max-memory", "87999", cwd=ROOT)
    assert done.returncode == 1 and "activations for one image take 85.9 KiB" in done.stderr
    done = run_cli("check", str(path), "--max-params", "0", cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_budget_refuses_before_building(spec_text):
    from cnnbuild import SpecError, build_model
    path = spec_text("name: wide\ninput: [100, 100, 1]\nbudget: {params: 1000}\nlayers: [flatten, {dense: 2000}]\n")
    with pytest.raises(SpecError, match="over the budget of 1,000"):
        build_model(path)      # raises before Keras allocates a single weight


# --- fuzz: mutated zoo specs never crash the CLI ------------------------------------

ZOO_LIKE = [
    """
    name: small
    input: [32, 32, 3]
    blocks:
      basic:
        params: {filters: required, stride: 1}
        layers:
          - residual:
              body:
                - conv: {filters: $filters, kernel: 3, stride: $stride, padding: same, batchnorm: true, activation: relu}
                - conv: {filters: "${filters * 2}", kernel: 1}
              shortcut: auto
              activation: relu
    layers:
      - conv: {name: stem, filters: 8, kernel: 3, padding: 1}
      - basic: {filters: 8}
      - max_pool: {name: p1, size: 2}
      - inception:
          branches:
            - [{conv: {filters: 4, kernel: 1}}]
            - [{conv: {filters: 4, kernel: 3, padding: same}}]
            - []
      - max_unpool: p1
      - concat: {with: [stem]}
      - repeat: {times: 2, layers: [{conv: {filters: "${index * 4}", kernel: 3, padding: same}}]}
      - global_avg_pool: {keepdims: true}
      - reshape: [-1]
      - dropout: 0.5
      - dense: {units: 10, activation: softmax}
    """,
]
# the mutators of bench/fuzz.py (tests/test_fuzz.py runs it over specs/ and tests/specs); here
# over the small zoo-like specs above, through the whole command line
sys.path.insert(0, str(ROOT / "bench"))
import fuzz  # noqa: E402


def test_fuzz_mutated_specs_never_crash(tmp_path, monkeypatch):
    import textwrap
    monkeypatch.setenv("CNNBUILD_DEBUG", "1")   # a crash escapes main() instead of becoming an "internal error" line
    seeds = [textwrap.dedent(t) for t in ZOO_LIKE] + [p.read_text(encoding="utf-8") for p in sorted(SPECS.glob("*.yaml"))]
    rng = random.Random(2024)
    path = tmp_path / "fuzzed.yaml"
    statuses = []
    for case in range(200):
        seed = rng.choice(seeds)
        if rng.random() < 0.7:
            raw = yaml.safe_dump(fuzz.mutate_structure(rng, yaml.safe_load(seed)), sort_keys=False).encode("utf-8")
        else:
            raw = fuzz.mutate_bytes(rng, seed.encode("utf-8"))
        path.write_bytes(raw)
        text = raw.decode("utf-8", "replace")
        args = ["check", str(path)] + (["--json"] if case % 3 == 0 else [])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                status = main(args)
            except BaseException as e:   # anything escaping main() is a bug; show the spec that caused it
                pytest.fail(f"case {case}: {type(e).__name__}: {e}\n--- spec ---\n{text}")
        assert status in (0, 1, 2), f"case {case}: exit status {status}\n{text}"
        statuses.append(status)
    assert statuses.count(1) > 50      # the mutations do break specs


# --- hostile inputs answered at once (issue 10) -----------------------------------------

def _check_json(*args):
    """`check --json` in-process: (exit status, the one JSON document it printed or None, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["check", "--json", *map(str, args)])
    text = out.getvalue()
    return status, (json.loads(text) if text.strip() else None), err.getvalue()


@pytest.mark.parametrize("make", [
    lambda tmp: (os.mkfifo(tmp / "pipe.yaml"), tmp / "pipe.yaml")[1],   # opening it for reading would wait forever
    lambda tmp: Path("/dev/zero"),                                      # never ends, and says its size is 0
], ids=["fifo", "device"])
def test_only_regular_files_are_read(tmp_path, make):
    path = make(tmp_path)
    status, document, err = _check_json(path)
    assert status == 2 and "is not a regular file" in err and str(path) in err


@pytest.mark.parametrize("written, message", [
    ("/dev/zero", "is not a regular file"),
    ("a" * 300 + ".yaml", "File name too long"),
])
def test_backbone_spec_path_that_cannot_be_read(spec_text, written, message):
    path = spec_text(f"name: x\ninput: [8, 8, 3]\nlayers:\n  - backbone: {{spec: {written}}}\n")
    status, document, _ = _check_json(path)
    assert status == 1
    [error] = document["errors"]
    assert (error["line"], error["column"]) == (4, 15) and message in error["message"] and error["hint"]


def test_nul_byte_is_located(spec_text):
    path = spec_text("name: x\ninput: [8, 8, 1]\nlayers: [flatten]\n")
    path.write_bytes(b"name: x\ninput: [8, 8, 1]\nlayers: [fl\x00atten]\n")
    status, document, _ = _check_json(path)
    assert status == 1
    [error] = document["errors"]
    assert (error["line"], error["column"]) == (3, 12) and "U+0000" in error["message"]


def test_set_past_the_end_of_a_list_says_how_many():
    from cnnbuild.parse import load_spec
    from cnnbuild.parse.overrides import settings
    with pytest.raises(SpecError, match=r"'layers' has 8 items, so there is no 9") as caught:
        load_spec(SPECS / "lenet5.yaml", settings(["layers.9.conv.filters=3"]))
    assert "use 0 to 7" in caught.value.problems[0].hint


@pytest.mark.parametrize("kind, keras", [("MaxPooling2D", True), ("maxpool2d", False), ("BatchNorm2d", False)])
def test_keras_name_hint_only_for_keras_names(spec_text, kind, keras):
    path = spec_text(f"name: x\ninput: [8, 8, 1]\nlayers: [{kind}]\n")
    status, document, _ = _check_json(path)
    hint = document["errors"][0]["hint"]
    assert status == 1 and hint.startswith("did you mean") and ("is Keras's name" in hint) == keras


def test_shortcut_auto_works_out_the_stride_per_axis(spec_text):
    # a 1×2 input to a body that halves the width only: the projection needs stride [1, 2]
    path = spec_text("name: x\ninput: [1, 2, 4]\nlayers:\n  - residual: {body: [{conv: {filters: 8, kernel: 1, "
                     "stride: [1, 2], padding: same}}]}\n")
    status, document, _ = _check_json(path)
    assert status == 0 and document["output"] == [1, 1, 8]
    # body 1·1·4·8 + 8 = 40 and the projection the same: 80
    assert document["params"] == 80


@pytest.mark.parametrize("text, message, count", [
    # 300,000 numbers under the 1 MiB cap: refused once 100,000 values are read, not composed to the end
    ("name: x\ninput: [" + "1, " * 300_000 + "1]\nlayers: [flatten]\n", "the spec holds more than 100,000 values", 1),
    # 100,000 duplicate keys: the first 100 problems, then a last one saying reading stopped
    ("name: x\n" * 100_000, "more than 100 problems; reading stopped here", 101),
    # 1,000 unknown arguments in one layer: 20 named, the rest counted
    ("name: x\ninput: [8, 8, 1]\nlayers:\n  - conv: {filters: 1, kernel: 1, "
     + ", ".join(f"k{i}: 1" for i in range(1000)) + "}\n", "and 980 more unknown arguments", 21),
])
def test_huge_specs_are_cut_short(spec_text, text, message, count):
    status, document, _ = _check_json(spec_text(text))
    assert status == 1 and len(document["errors"]) == count and message in document["errors"][-1]["message"]

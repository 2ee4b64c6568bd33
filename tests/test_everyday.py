"""Everyday use (issue 21): Ctrl-C names the command that resumes, `data pack` keeps its
progress count off a pipe, `check` refuses softmax with from_logits: true in one message,
`predict` takes folders and globs in bounded batches."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cnnbuild.cli import main

from conftest import ROOT
from run_helpers import DIGIT_CLASSES, make_run, write_digit_pngs

LOGITS = """\
name: probabilities
input: [8, 8, 1]
layers:
  - flatten
  - dense: {units: 10, activation: softmax}
train:
  epochs: 1
  from_logits: true
"""


def test_check_refuses_softmax_with_from_logits_in_one_message(tmp_path, capsys):
    spec = tmp_path / "probabilities.yaml"
    spec.write_text(LOGITS, encoding="utf-8")
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {spec}:8:16: train.from_logits: true, but the network ends in softmax: its outputs "
                      "are probabilities, not logits"]
    assert "hint: remove from_logits" in err
    spec.write_text(LOGITS.replace("softmax}", "linear}"), encoding="utf-8")   # logits: what from_logits says
    assert main(["check", str(spec)]) == 0


def test_predict_takes_folders_and_globs_in_bounded_batches(tmp_path, capsys):
    run = make_run(tmp_path / "run", epochs=1)
    files = write_digit_pngs(tmp_path / "scans" / "a", count=5) + write_digit_pngs(tmp_path / "scans" / "b", count=2)
    (tmp_path / "scans" / "notes.txt").write_text("not an image")
    one_by_one = {}
    for path, _ in files:
        assert main(["predict", str(run), str(path), "--json"]) == 0
        one_by_one[str(path)] = json.loads(capsys.readouterr().out)[0]["probability"]
    assert main(["predict", str(run), str(tmp_path / "scans"), str(tmp_path / "scans" / "a" / "*_1.png"),
                 "--batch-size", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    expected = sorted(str(p) for p, _ in files) + [str(files[1][0])]   # the folder, at any depth, then the glob
    assert [r["file"] for r in results] == expected
    assert all(r["class"] in DIGIT_CLASSES for r in results)
    for result in results:   # batches of 2 (and a last of 1) give what a file alone gives
        assert np.isclose(result["probability"], one_by_one[result["file"]], atol=1e-5)
    assert main(["predict", str(run), str(tmp_path / "scans" / "*.gif")]) == 2
    assert "could not be read" in capsys.readouterr().err


def test_data_pack_prints_no_progress_count_into_a_pipe(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "d" / name / f"{i}.png")
    done = subprocess.run([sys.executable, "-m", "cnnbuild.cli", "data", "pack", str(tmp_path / "d"), "--out",
                           str(tmp_path / "packed")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "packed 8/8" not in done.stderr
    assert done.stdout.strip() == f"{tmp_path / 'packed'}: 8 images, 2 classes, 1 shard"


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(tmp_path):
    spec = tmp_path / "slow.yaml"
    spec.write_text(LOGITS.replace("from_logits: true", "").replace("epochs: 1", "epochs: 500"), encoding="utf-8")
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "cnnbuild.cli", "train", str(spec), "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not (out / "history.csv").is_file():
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)     # what Ctrl-C sends
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"hint: to resume, run the same command again: cnnbuild train {spec} --out {out}" in err
    assert "Traceback" not in err

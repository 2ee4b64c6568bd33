"""Choosing a network: compare (static and trained), tune (keras-tuner's real oracles, the
static check pruning candidates before any training, resumable, distributed)."""
from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnbuild import check, load_spec
from cnnbuild.cli import main

ROOT = Path(__file__).resolve().parent.parent

TINY = """\
name: tiny
input: [8, 8, 1]
layers:
  - conv: {filters: 8, kernel: 3, padding: same, activation: relu}
  - max_pool: 2
  - flatten
  - dense: {units: 10, activation: softmax}
data: {source: digits}
train: {epochs: 1, batch_size: 64}
"""
WIDE = TINY.replace("name: tiny", "name: wide").replace("filters: 8,", "filters: 32,")
# filters f gives 9f + f + 16f·10 + 10 = 170f + 10 parameters: under 2,000 only for 4 and 8
SEARCHED = TINY + """\
search:
  layers.0.conv.filters: [4, 64, 8, 128, 256]
  train.optimizer.learning_rate: {min: 1e-3, max: 1e-2, log: true}
"""


def write(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows_of(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_compare_static_is_the_check(tmp_path, capsys):
    specs = [write(tmp_path, TINY, "tiny.yaml"), write(tmp_path, WIDE, "wide.yaml")]
    assert main(["compare", *map(str, specs), "--out", str(tmp_path / "cmp")]) == 0
    rows = rows_of(tmp_path / "cmp" / "compare.csv")
    assert [r["name"] for r in rows] == ["tiny", "wide"]
    for row, spec in zip(rows, specs):
        report = check(load_spec(spec))
        assert int(row["params"]) == report.params == 170 * (8 if row["name"] == "tiny" else 32) + 10
        assert int(row["macs"]) == report.macs and row["val_accuracy"] == ""
    assert not (tmp_path / "cmp" / "compare.png").exists()        # nothing trained: no chart
    assert "tiny" in capsys.readouterr().out


def test_compare_every_variant_of_a_spec(tmp_path):
    spec = ROOT / "specs" / "scaled_cnn.yaml"
    assert main(["compare", str(spec), "--variants", "all", "--out", str(tmp_path)]) == 0
    rows = rows_of(tmp_path / "compare.csv")
    assert [r["name"] for r in rows] == ["scaled_cnn:small", "scaled_cnn:medium", "scaled_cnn:large"]
    for row in rows:
        assert int(row["macs"]) == check(load_spec(spec, variant=row["name"].split(":")[1])).macs
    assert int(rows[0]["params"]) < int(rows[1]["params"]) < int(rows[2]["params"])


def test_compare_trained_writes_csv_and_chart(tmp_path):
    from PIL import Image
    specs = [write(tmp_path, TINY, "tiny.yaml"), write(tmp_path, WIDE, "wide.yaml")]
    assert main(["compare", *map(str, specs), "--epochs", "1", "--out", str(tmp_path / "cmp")]) == 0
    rows = rows_of(tmp_path / "cmp" / "compare.csv")
    for row, spec in zip(rows, specs):
        assert int(row["macs"]) == check(load_spec(spec)).macs
        assert 0.0 <= float(row["val_accuracy"]) <= 1.0 and float(row["images_per_second"]) > 0
        assert (Path(row["run"]) / "model.keras").is_file()
    chart = Image.open(tmp_path / "cmp" / "compare.png")
    assert chart.size[0] > 300 and np.asarray(chart.convert("L")).std() > 5   # a drawn chart, not a blank


def test_a_search_space_is_checked_at_its_line(tmp_path, capsys):
    bad = write(tmp_path, TINY + "search:\n  train.batch_size: {min: 64, max: 8}\n", "bad.yaml")
    assert main(["tune", str(bad), "--out", str(tmp_path / "t")]) == 1
    assert f"{bad}:11:" in capsys.readouterr().err
    good = write(tmp_path, SEARCHED, "good.yaml")
    assert main(["check", str(good)]) == 0         # a spec with a search space checks as the spec it is


def test_tune_trains_only_candidates_within_the_budget(tmp_path, capsys):
    spec = write(tmp_path, SEARCHED, "searched.yaml")
    out = tmp_path / "tune"
    assert main(["tune", str(spec), "--trials", "2", "--out", str(out), "--max-params", "2000"]) == 0
    rows = rows_of(out / "trials.csv")
    trained = [r for r in rows if r["status"] == "trained"]
    refused = [r for r in rows if r["status"] == "over budget"]
    assert len(trained) == 2 and all(int(r["layers.0.conv.filters"]) in (4, 8) for r in trained)
    assert refused, "keras-tuner's seeded random oracle proposes 64, 128 or 256 before two small ones"
    assert all(int(r["params"]) == 170 * int(r["layers.0.conv.filters"]) + 10 for r in trained)
    assert all(int(r["layers.0.conv.filters"]) >= 64 and "> 2,000" in r["message"] for r in refused)
    assert all((Path(r["run"]) / "model.keras").is_file() for r in trained)
    assert not (out / "trials").exists() or len(list((out / "trials").iterdir())) == 2   # the refused never trained
    best = out / "best.yaml"
    assert "search" not in best.read_text(encoding="utf-8")
    assert main(["check", str(best)]) == 0
    assert main(["train", str(best), "--out", str(tmp_path / "again"), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "best: val_accuracy" in printed


def test_a_budget_nothing_fits_ends_the_search_naming_it(tmp_path, capsys):
    spec = write(tmp_path, SEARCHED, "searched.yaml")
    assert main(["tune", str(spec), "--trials", "2", "--out", str(tmp_path / "t"), "--max-params", "100"]) == 1
    said = capsys.readouterr().out
    assert "refused" in said and "params ≤ 100" in said


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.update(extra)
    return env


@pytest.mark.slow
def test_tune_resumes_after_a_real_kill(tmp_path):
    spec = write(tmp_path, SEARCHED.replace("epochs: 1", "epochs: 4"), "searched.yaml")
    out = tmp_path / "tune"
    command = [sys.executable, "-m", "cnnbuild.cli", "tune", str(spec), "--trials", "2", "--out", str(out),
               "--max-params", "2000"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=_env())
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("trials/*/checkpoints/epoch_*")):
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr
    rows = rows_of(out / "trials.csv")
    assert sum(r["status"] == "trained" for r in rows) == 2
    assert (out / "best.yaml").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_tune_chief_and_two_workers(tmp_path):
    spec = write(tmp_path, SEARCHED, "searched.yaml")
    out, port = tmp_path / "tune", str(_free_port())
    command = [sys.executable, "-m", "cnnbuild.cli", "tune", str(spec), "--trials", "3", "--out", str(out),
               "--max-params", "2000"]
    shared = dict(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port)
    chief = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=_env(KERASTUNER_TUNER_ID="chief", **shared))
    time.sleep(3)
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env=_env(KERASTUNER_TUNER_ID=f"tuner{i}", **shared)) for i in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    _, err = chief.communicate(timeout=120)
    assert chief.returncode == 0, err
    rows = rows_of(out / "trials.csv")
    trained = [r for r in rows if r["status"] == "trained"]
    assert len(trained) == 3
    assert len({r["run"] for r in trained}) == 3 and all((Path(r["run"]) / "model.keras").is_file() for r in trained)


def test_scale_to_a_budget_by_the_compound_rule(tmp_path, capsys):
    """The largest φ within the budget: its spec fits, a slightly larger φ does not; the written
    spec checks valid with the chosen values; depth, width and resolution grow as α^φ, β^φ, γ^φ."""
    from cnnbuild.choose.candidates import Budget
    from cnnbuild.choose.scale import scale
    spec = ROOT / "specs" / "scaled_cnn.yaml"
    budget = 6_000_000
    result = scale(spec, Budget(macs=budget), out=tmp_path / "scaled.yaml")
    chosen = result.chosen
    assert chosen.figures.macs <= budget
    assert any(c.phi > chosen.phi and not c.fits for c in result.tried)       # the next size up does not fit
    assert chosen.values["depth"] == pytest.approx(1.2 ** chosen.phi, abs=1e-3)
    assert chosen.values["width"] == pytest.approx(1.1 ** chosen.phi, abs=1e-3)
    written = load_spec(tmp_path / "scaled.yaml")
    report = check(written)
    assert report.valid and report.macs == chosen.figures.macs
    assert {k: v for k, v in written.params if k in chosen.values} == chosen.values    # its values, written in
    assert main(["scale", str(spec), "--max-macs", "1000"]) == 2
    assert "even the base spec does not fit" in capsys.readouterr().err
    assert main(["scale", str(write(tmp_path, TINY, "tiny.yaml")), "--max-macs", "10000000"]) == 2
    assert "depth, width and resolution parameters" in capsys.readouterr().err


def test_the_python_api_chooses_as_the_command_line(tmp_path):
    import cnnbuild
    rows = cnnbuild.compare_specs([ROOT / "specs" / "scaled_cnn.yaml"], variants=["small", "large"])
    assert [row.figures.params for row in rows] == [check(load_spec(ROOT / "specs" / "scaled_cnn.yaml", variant=v)).params
                                                    for v in ("small", "large")]
    scaled = cnnbuild.scale_spec(ROOT / "specs" / "scaled_cnn.yaml", max_macs=2_000_000)
    assert scaled.chosen.figures.macs <= 2_000_000
    with pytest.raises(cnnbuild.UsageError, match="no `search:` section"):
        cnnbuild.tune_spec(ROOT / "specs" / "scaled_cnn.yaml", out=tmp_path)

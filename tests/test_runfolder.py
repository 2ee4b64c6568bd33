"""The run folder has one owner (a flock on RUN/.lock, checked with real processes: a second
training refused while the first finishes, a SIGKILLed owner's lock taken over), and its
files, damaged, are named rather than crashed on."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnbuild import runfolder
from cnnbuild.cli import main

ROOT = Path(__file__).resolve().parent.parent

TINY = """\
name: tiny
input: [8, 8, 1]
layers:
  - conv: {filters: 8, kernel: 3, padding: same, activation: relu}
  - flatten
  - dense: {units: 10, activation: softmax}
train:
  epochs: 4
  batch_size: 64
"""

HOLD = ("import sys, time; from cnnbuild import runfolder\n"
        "with runfolder.owned(sys.argv[1], 'train'):\n"
        "    print('held', flush=True); time.sleep(120)\n")


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def test_a_second_owner_is_refused_naming_the_first_and_the_lock_is_free_after(tmp_path):
    folder = tmp_path / "run"
    with runfolder.owned(folder, "train") as owner:
        assert json.loads((folder / runfolder.LOCK).read_text())["pid"] == os.getpid() == owner["pid"]
        with pytest.raises(runfolder.FolderInUse) as refused:       # a second descriptor, even in this process
            with runfolder.owned(folder, "export"):
                pass
        message = str(refused.value)
        assert message.startswith(f"{folder} is in use by pid {os.getpid()} on ") and "running since" in message
        assert "nothing was changed" in message and "hint: wait for it to finish" in message
    with runfolder.owned(folder, "export"):                         # released at the end of the block
        pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(runfolder.UsageError, match="exists and is not a folder"):
        with runfolder.owned(tmp_path / "file", "train"):
            pass


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(runfolder.FolderInUse, match=f"in use by pid {holder.pid} on .*: cnnbuild train"):
            with runfolder.owned(folder, "train"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)        # no cleanup runs: the kernel drops the flock with the process
        holder.wait()
    assert (folder / runfolder.LOCK).read_text()   # the dead owner's name is still in the file …
    with runfolder.owned(folder, "train") as owner:  # … but the lock is free
        assert owner["pid"] == os.getpid()


@pytest.mark.slow
def test_two_trainings_on_one_folder_the_second_refused_while_the_first_finishes(tmp_path):
    spec, out = tmp_path / "tiny.yaml", tmp_path / "run"
    spec.write_text(TINY, encoding="utf-8")
    first = subprocess.Popen([sys.executable, "-m", "cnnbuild.cli", "train", str(spec), "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    try:
        deadline = time.time() + 120
        while not (out / runfolder.HISTORY).is_file() and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        # the first is paused mid-run (after its first epoch), so the second surely meets it running
        first.send_signal(signal.SIGSTOP)
        before = sorted(p.name for p in (out / runfolder.CHECKPOINTS).iterdir())
        second = subprocess.run([sys.executable, "-m", "cnnbuild.cli", "train", str(spec), "--out", str(out),
                                 "--epochs", "20"], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120)
        assert sorted(p.name for p in (out / runfolder.CHECKPOINTS).iterdir()) == before   # nothing touched
    finally:
        first.send_signal(signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert second.returncode == 2, second.stderr
    assert f"cnnbuild train: {out} is in use by pid {first.pid} on " in second.stderr
    assert f"cnnbuild train {spec} --out {out}" in second.stderr and "Traceback" not in second.stderr
    assert "epoch" not in second.stdout
    # the first's results are its own: its 4 epochs, not the second's 20, and the lock free again
    result = json.loads((out / runfolder.METRICS).read_text())
    assert result["epochs"] == result["epochs_requested"] == 4
    assert [r["epoch"] for r in runfolder.read_history(out / runfolder.HISTORY)] == [1, 2, 3, 4]
    assert "done: 4 epochs" in stdout
    with runfolder.owned(out, "train"):
        pass


def test_damaged_history_and_metrics_are_named(tmp_path):
    history, metrics = tmp_path / runfolder.HISTORY, tmp_path / runfolder.METRICS
    assert runfolder.read_history(history) == [] and runfolder.read_metrics(metrics) is None
    for text in (b"\xff\xfe\x00garbage", b"epoch,loss\n1,0.5,9\n", b"epoch,loss\n1,lots\n"):
        history.write_bytes(text)
        with pytest.raises(runfolder.DamagedFile, match=f"^{history}: cannot be read as a history"):
            runfolder.read_history(history)
    history.write_text("epoch,loss\n1,0.5\n2,0.25\n")
    assert runfolder.read_history(history) == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    for text, why in ((b'{"loss": 0.5', "cannot be read as JSON"), (b"[1, 2]", "holds list, not an object"),
                      (b"\xff\xfe", "cannot be read as JSON")):
        metrics.write_bytes(text)
        with pytest.raises(runfolder.DamagedFile, match=f"^{metrics}: {why}"):
            runfolder.read_metrics(metrics)


def test_export_into_a_run_folder_in_use_is_refused_before_reading_it(tmp_path, capsys):
    """Only writing into the run (the default RUN/export/FORMAT, or any --out inside it)
    takes its lock; the refusal comes first, before the model is even loaded."""
    out = tmp_path / "run"
    out.mkdir()
    with runfolder.owned(out, "train"):
        for extra in ([], ["--out", str(out / "mine")]):
            assert main(["export", str(out), "--format", "keras", *extra]) == 2
            assert f"cnnbuild export: {out} is in use by pid {os.getpid()}" in capsys.readouterr().err
        # elsewhere, no lock is needed: the error is the (untrained) run's own
        assert main(["export", str(out), "--out", str(tmp_path / "elsewhere"), "--format", "keras"]) == 2
        assert "not a finished run folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [runfolder.LOCK]


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--data", str(tmp_path / "none.npz")]) == 1
    assert "none.npz" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_a_busy_run_folder_is_refused_before_tensorflow_starts(tmp_path):
    """A second `cnnbuild train` into a folder another process holds is refused at once: the
    lock is taken before TensorFlow is imported, so the refusal never waits for its start-up."""
    spec, out = tmp_path / "tiny.yaml", tmp_path / "run"
    spec.write_text(TINY, encoding="utf-8")
    program = ("import sys, time; from cnnbuild.cli import main; began = time.perf_counter(); "
               f"code = main(['train', {str(spec)!r}, '--out', {str(out)!r}]); "
               "print('tensorflow' in sys.modules, round(time.perf_counter() - began, 3)); sys.exit(code)")
    with runfolder.owned(out, "train"):
        began = time.perf_counter()
        second = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, env=_env(),
                                timeout=120)
        elapsed = time.perf_counter() - began
    assert second.returncode == 2, second.stderr
    assert f"{out} is in use by pid {os.getpid()}" in second.stderr
    imported, seconds = second.stdout.split()
    assert imported == "False"                 # TensorFlow was never imported by the refused process
    assert elapsed < 2.0, f"refused after {elapsed:.2f} s (in-process {seconds} s)"   # the bound, whole process

"""What a user sees in a terminal or a log: cnnbuild's own lines, not TensorFlow's start-up
log, and a quiet end when the reader of a pipe stops early."""
import os
import re
import subprocess
import sys

from conftest import ROOT, SPECS

# TensorFlow's C++ log lines (absl's format: severity letter, MMDD, time) and its start-up notices
TF_LOG = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuInit|cuda", re.M)


def cnnbuild(*args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CNNBUILD_DEBUG")}
    return subprocess.run([sys.executable, "-m", "cnnbuild.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, timeout=300, **kwargs)


def test_train_in_a_pipe_prints_no_tensorflow_log(tmp_path):
    quiet = cnnbuild("train", SPECS / "lenet5.yaml", "--epochs", "1", "--out", tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "epoch 1/1" in quiet.stdout
    assert not TF_LOG.search(quiet.stdout + quiet.stderr), quiet.stderr
    # --verbose shows TensorFlow's log as it is: the lines above were hidden, not absent
    verbose = cnnbuild("train", SPECS / "lenet5.yaml", "--epochs", "1", "--out", tmp_path / "verbose", "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-2000:]
    assert TF_LOG.search(verbose.stderr), verbose.stderr


def test_spec_errors_still_come_through(tmp_path):
    """Hiding the start-up log must not hide cnnbuild's own errors."""
    result = cnnbuild("train", SPECS / "lenet5.yaml", "--out", tmp_path / "run", "--set", "train.batch_size=0")
    assert result.returncode == 1 and "batch_size" in result.stderr, result.stderr


def test_a_pipe_closed_early_ends_quietly():
    """`cnnbuild check … | head -1`: the reader goes away before cnnbuild has written; no
    'internal error', no traceback, and the status a Unix tool killed by SIGPIPE has."""
    process = subprocess.Popen([sys.executable, "-m", "cnnbuild.cli", "check", str(SPECS / "resnet50.yaml")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    process.stdout.close()     # the reader is gone before the first line
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 141, stderr
    assert b"internal error" not in stderr and b"Traceback" not in stderr and b"BrokenPipe" not in stderr, stderr


def test_version():
    result = cnnbuild("--version")
    assert result.returncode == 0 and re.fullmatch(r"cnnbuild \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout

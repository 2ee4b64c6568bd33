"""tf.distribute without a GPU: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1 (TF_CONFIG); each run
must end with identical weights on every replica and worker. Each run is its own process:
logical devices and collectives can only be set up before TensorFlow runs an op."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cnnbuild import parse_spec, runfolder

ROOT = Path(__file__).resolve().parent.parent

# batchnorm on purpose: Keras 3 updates its moving statistics per replica, which the trainer
# must bring back together; dropout on purpose: its seed state is part of the weights
SPEC = """\
name: small
input: [12, 12, 1]
layers:
  - conv: {filters: 8, kernel: 3, padding: same, batchnorm: true, activation: relu}
  - max_pool: 2
  - flatten
  - dropout: 0.2
  - dense: {units: 10, activation: softmax}
augment:
  - rotate: 10
train:
  epochs: 2
  batch_size: 64
"""


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _train(spec, out, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "cnnbuild.cli", "train", str(spec), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env or _env())


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_keeps_replicas_identical(tmp_path):
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC)
    process = _train(spec, tmp_path / "run", "--set", "train.strategy=mirrored", "--set", "train.devices=2")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "mirrored strategy, 2 replicas" in stdout
    result = json.loads((tmp_path / "run" / runfolder.METRICS).read_text())
    assert result["replicas"] == 2 and result["replicas_identical"] is True
    assert result["val_accuracy"] > 0.3


def _multi_worker(spec, tmp_path, *extra):
    ports = _free_ports(2)
    workers = [f"127.0.0.1:{port}" for port in ports]
    processes = []
    for index in range(2):
        config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(_train(spec, tmp_path / f"worker{index}", "--set", "train.strategy=multi_worker", *extra,
                                env=_env(TF_CONFIG=config)))
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    digests = [re.search(r"weights sha256 ([0-9a-f]{64})", stdout).group(1) for stdout, _ in outputs]
    return [stdout for stdout, _ in outputs], digests


@pytest.mark.slow
def test_two_workers_on_loopback_end_with_identical_weights_and_resume_together(tmp_path):
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC)
    (chief, worker), digests = _multi_worker(spec, tmp_path)
    assert digests[0] == digests[1]
    assert "multi_worker strategy, 2 replicas" in chief and "epoch 2/2" in chief
    assert "epoch" not in worker                           # only the chief reports …
    assert not (tmp_path / "worker1").exists()            # … and only the chief writes files
    result = json.loads((tmp_path / "worker0" / runfolder.METRICS).read_text())
    assert result["weights_sha256"] == digests[0] and result["strategy"] == "multi_worker"
    # the same command with more epochs: the chief resumes from its checkpoint and the other
    # worker, which has no run folder, continues from the chief's state
    (chief, worker), digests = _multi_worker(spec, tmp_path, "--epochs", "3")
    assert digests[0] == digests[1]
    assert "resuming after epoch 2 of 3" in chief and "epoch 3/3" in chief and "epoch 1/3" not in chief
    assert len(runfolder.read_history(tmp_path / "worker0" / runfolder.HISTORY)) == 3


def test_tpu_without_a_tpu_is_a_clear_error(monkeypatch):
    """TPUStrategy through TPUClusterResolver (see README); here, where there is none, the
    request is refused at once instead of probing the network."""
    import tensorflow as tf

    from cnnbuild import UsageError
    from cnnbuild.train.strategy import make_plan, tpu_hinted
    for name in ("TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(name, raising=False)
    if tpu_hinted():
        pytest.skip("this machine has a TPU")
    section = parse_spec("name: n\ninput: [8, 8, 1]\nlayers: [flatten]\ntrain: {strategy: tpu}\n").train
    with pytest.raises(UsageError, match="strategy tpu: no TPU found"):
        make_plan(section, tf)


@pytest.mark.skipif(not (os.environ.get("TPU_NAME") or os.path.exists("/dev/accel0")), reason="no TPU here")
def test_tpu_trains(tmp_path):
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC)
    process = _train(spec, tmp_path / "run", "--set", "train.strategy=tpu")
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr


@pytest.mark.parametrize("config, strategy, writes", [
    (None, "auto", True),                                                                  # one process
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, "auto", True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, "auto", False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, "auto", False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, "auto", True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, "default", True),
])
def test_only_the_chief_locks_and_writes_the_run_folder(monkeypatch, config, strategy, writes):
    """Decided from TF_CONFIG before TensorFlow starts, so the lock comes first; the rule is
    the one multi_worker runs use (worker 0 is the chief unless a task is named chief)."""
    from cnnbuild.train.strategy import writes_run_folder
    for name in ("TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(name, raising=False)
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    section = parse_spec(f"name: n\ninput: [8, 8, 1]\nlayers: [flatten]\ntrain: {{strategy: {strategy}}}\n").train
    assert writes_run_folder(section) is writes


@pytest.mark.slow
def test_two_workers_read_their_own_packed_shards(tmp_path):
    """A packed folder (cnnbuild data pack) of 4 shards: each of the two workers reads its own
    two files (no 'each worker reads every file' warning), and they end identical."""
    import numpy as np
    from sklearn.datasets import load_digits
    digits = load_digits()
    np.savez(tmp_path / "digits.npz", x=np.round(digits.images * 255 / 16).astype(np.uint8)[..., None], y=digits.target)
    packed = subprocess.run([sys.executable, "-m", "cnnbuild.cli", "data", "pack", str(tmp_path / "digits.npz"),
                             "--out", str(tmp_path / "packed"), "--shards", "4"],
                            capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
    assert packed.returncode == 0, packed.stderr
    index = json.loads((tmp_path / "packed" / "index.json").read_text())
    assert len(index["shards"]) == 4 and sum(shard["count"] for shard in index["shards"]) == len(digits.target)
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC.replace("epochs: 2", "epochs: 1"))
    ports = _free_ports(2)
    workers = [f"127.0.0.1:{port}" for port in ports]
    processes = [_train(spec, tmp_path / f"worker{i}", "--set", "train.strategy=multi_worker", "--data",
                        str(tmp_path / "packed"), env=_env(TF_CONFIG=json.dumps(
                            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})))
                 for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
        assert "reads every file" not in stderr
    digests = [re.search(r"weights sha256 ([0-9a-f]{64})", stdout).group(1) for stdout, _ in outputs]
    assert digests[0] == digests[1]

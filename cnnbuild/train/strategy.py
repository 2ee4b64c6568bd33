"""Where training runs: the tf.distribute strategy, and everything that differs between one
worker and several.

`make_plan` returns a `Plan` (default, mirrored and TPU strategies: one process, Keras's
fit) or a `MultiWorkerPlan` (MultiWorkerMirroredStrategy: one process per worker, each
feeding its shard to the custom strategy.run loop, since Keras 3.15's fit() crashes under
MultiWorkerMirroredStrategy with two workers). The trainer asks the plan, never the kind:
how many steps an epoch has, how many images it counts, which loop runs, how workers share
the state they resume from, what a worker says of its weights. Only the chief writes.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from ..errors import UsageError
from .loop import KerasFit, StrategyRunLoop
from .replicas import broadcast_from_chief


def tf_error_text(e) -> str:
    """One line for a TensorFlow error: its own message, not the graph's "in user code" trace."""
    message = getattr(e, "message", None) or str(e) or type(e).__name__
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    # TensorFlow's graph errors start "in user code:" and end with the actual error
    text = (lines[-1] if lines[0].startswith("in user code") else lines[0]) if lines else type(e).__name__
    if type(e).__name__ == "ResourceExhaustedError":
        text += "\n  hint: out of memory: lower train.batch_size"
    return f"{type(e).__name__}: {text}"


@dataclasses.dataclass
class Plan:
    """One process trains: the strategy kind (default, mirrored or tpu), its replicas, and
    whether this process is the chief (the one that writes; always, but for multi-worker)."""

    kind: str
    strategy: object
    replicas: int
    chief: bool
    workers: int = 1
    worker_index: int = 0
    accelerator: str = "cpu"        # cpu | gpu | tpu

    loop = KerasFit                 # Keras's fit(): today's speed on one device

    def steps_per_epoch(self, train_images, batch_size) -> int:
        """Every image once per epoch; the last batch may be short."""
        return -(-train_images // batch_size)

    def images_per_epoch(self, steps, batch_size, train_images) -> int:
        return train_images

    def share_state(self, start, stopped, variables):
        """(epoch to start from, why the run stopped) as every worker will use them. One
        process: what it read from its checkpoint."""
        return start, stopped

    def weights_line(self, digest):
        """What a worker says of its final weights: nothing, with one process."""
        return None


@dataclasses.dataclass
class MultiWorkerPlan(Plan):
    """Several processes train together: each takes an equal shard of every epoch in whole
    batches, the chief writes, and every worker starts from the chief's state."""

    loop = StrategyRunLoop

    def steps_per_epoch(self, train_images, batch_size) -> int:
        """Whole batches only, the same number on every worker: each worker's share of the
        images, in batches of `batch_size / replicas` per replica."""
        if batch_size % self.replicas:
            raise UsageError(f"train.batch_size {batch_size} is not divisible by the "
                             f"{self.replicas} replicas of this multi-worker run")
        per_replica = batch_size // self.replicas
        local = self.replicas // self.workers
        steps = ((train_images // self.workers) // per_replica) // max(local, 1)
        if steps < 1:
            raise UsageError(f"{train_images} training images are too few for a batch of "
                             f"{batch_size} over {self.replicas} replicas")
        return steps

    def images_per_epoch(self, steps, batch_size, train_images) -> int:
        return steps * batch_size          # the images left over by the shards are not trained

    def share_state(self, start, stopped, variables):
        """Every worker continues from the chief's checkpoint (only the chief has a run folder)."""
        import tensorflow as tf
        flags = [np.array([float(start), 1.0 if stopped else 0.0], np.float32)]
        shared = broadcast_from_chief(tf, self.strategy, flags + [np.asarray(v.numpy()) for v in variables])
        for variable, value in zip(variables, shared[1:]):
            variable.assign(value)
        # the chief keeps its own reason; the others need only know that the run has stopped
        return int(round(shared[0][0])), stopped if self.chief else ("early_stopping" if shared[0][1] > 0.5 else None)

    def weights_line(self, digest):
        """Each worker prints its weights' digest, so the runs can be checked identical."""
        return f"worker {self.worker_index}{' (chief)' if self.chief else ''}: weights sha256 {digest}"


def _tf_config() -> dict:
    text = os.environ.get("TF_CONFIG")
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise UsageError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    return config


def tpu_hinted() -> bool:
    """A TPU is worth looking for: a TPU VM's devices, or the variables Cloud TPU and Colab set.
    (TPUClusterResolver without a hint would query the GCE metadata server, slowly, off GCP.)"""
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0")
                or os.path.exists("/dev/vfio/0"))


def _workers(config) -> int:
    return sum(len(v) for k, v in config.get("cluster", {}).items() if k in ("worker", "chief"))


def _is_chief(task_type, task_id, cluster) -> bool:
    """The chief of a multi-worker cluster: the task named chief, else worker 0."""
    return task_type == "chief" or (task_type in ("worker", None) and (task_id or 0) == 0 and "chief" not in cluster)


def writes_run_folder(train_section) -> bool:
    """Whether this process will write the run folder: false only for the non-chief workers
    of a multi-worker run. Read from TF_CONFIG without TensorFlow, so the folder can be
    locked before anything starts (`make_plan` decides the same way)."""
    config = _tf_config()
    kind = train_section.strategy
    if kind == "auto":
        kind = "multi_worker" if not tpu_hinted() and _workers(config) > 1 else "default"
    if kind != "multi_worker":
        return True
    task = config.get("task") or {}
    return _is_chief(task.get("type"), task.get("index"), config.get("cluster", {}))


def make_plan(train_section, tf) -> Plan:
    """Pick and create the strategy. Called before any other TensorFlow op: logical CPU
    devices and multi-worker collectives can only be configured at start-up."""
    kind = train_section.strategy
    gpus = tf.config.list_physical_devices("GPU")
    config = _tf_config()
    workers = _workers(config)
    if kind == "auto":
        if tpu_hinted():
            kind = "tpu"
        elif workers > 1:
            kind = "multi_worker"
        elif len(gpus) > 1 or (train_section.devices or 1) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    accelerator = "gpu" if gpus else "cpu"
    if kind == "default":
        return Plan(kind, tf.distribute.get_strategy(), 1, True, accelerator=accelerator)
    if kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy(_mirrored_devices(train_section.devices, gpus, tf))
        return Plan(kind, strategy, strategy.num_replicas_in_sync, True, accelerator=accelerator)
    if kind == "multi_worker":
        if config and "task" not in config:
            raise UsageError("TF_CONFIG has no 'task': each worker needs {\"task\": {\"type\": \"worker\", \"index\": N}}")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        task_type, task_id = resolver.task_type, resolver.task_id
        cluster = config.get("cluster", {})
        chief = _is_chief(task_type, task_id, cluster)
        index = (task_id or 0) + (1 if "chief" in cluster and task_type == "worker" else 0)
        return MultiWorkerPlan(kind, strategy, strategy.num_replicas_in_sync, chief, max(workers, 1), index, accelerator)
    # tpu
    if not tpu_hinted():
        raise UsageError("strategy tpu: no TPU found (no TPU_NAME, COLAB_TPU_ADDR or /dev/accel0)\n  hint: on a TPU VM "
                         "run as is; with a TPU node set TPU_NAME=your-tpu; elsewhere use strategy: auto")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise UsageError(f"strategy tpu: could not connect to the TPU: {tf_error_text(e)}") from None
    return Plan(kind, strategy, strategy.num_replicas_in_sync, True, accelerator="tpu")


def _mirrored_devices(wanted, gpus, tf) -> list:
    """The devices of a mirrored run: `train.devices` GPUs (all by default), or without GPUs
    one physical CPU shown as `wanted` logical devices (possible only before any op runs)."""
    if gpus:
        if wanted and wanted > len(gpus):
            raise UsageError(f"train.devices is {wanted}, but this machine has {len(gpus)} GPU(s)")
        return [f"/gpu:{i}" for i in range(min(wanted or len(gpus), len(gpus)))]
    count = wanted or 1
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:
            raise UsageError("the CPU cannot be split into logical devices after TensorFlow has started; run "
                             "cnnbuild train in a fresh process") from None
    return [f"/cpu:{i}" for i in range(count)]

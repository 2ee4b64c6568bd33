"""`cnnbuild train` against the strongest hand-written Keras/tf.data script for the same job.

    python bench/train_speed.py [--runs 5] [--epochs 25]

The job users run: specs/lenet5.yaml as it is — LeNet-5 (61,706 parameters) on
scikit-learn's 8×8 digits resized to 32×32, a seeded 20% validation split, Adam 0.002 on a
cosine schedule to 0 over the run, batch 32, augmentation `rotate: 8` and `translate: 0.06`
(reflected edges), validating after every epoch. The hand-written side does the same with
what a careful engineer would write: the images resized once and cached, a tf.data
shuffle → batch → augmentation (AUTOTUNE) → prefetch, the rotation and the shift composed
into ONE ImageProjectiveTransformV3 per image (Keras's RandomRotation then RandomTranslation
would resample twice), keras.optimizers.schedules.CosineDecay. Each run is its own process,
the sides alternating (which goes first alternates too), seeds 0…runs−1 on both. Per run:

  images/second      training images / the training part of an epoch (validation excluded),
                     the median over epochs after the first (which includes tracing);
  images/CPU-second  every training image of the run / the process's CPU time (user +
                     system, resource.getrusage of children: start-up, validation and
                     cnnbuild's per-epoch checkpoints included; the hardware each side
                     keeps busy, which a shared machine's clock does not show);
  time to 97%        seconds from the start of fit() to the end of the first epoch whose
                     validation accuracy is at least 0.97.

Printed: each run, the medians of both sides, the ratios cnnbuild / hand-written (images/s,
images/CPU-s; hand-written / cnnbuild for time to 97%: above 1 = cnnbuild faster), and
`uptime`'s load before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "lenet5.yaml"
TARGET = 0.97

HAND_WRITTEN = r'''
import json, math, sys, time
import numpy as np, tensorflow as tf, keras
from sklearn.datasets import load_digits

seed, epochs, batch = int(sys.argv[1]), int(sys.argv[2]), 32
keras.utils.set_random_seed(seed)
digits = load_digits()
images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
x = (tf.image.resize(tf.cast(images, tf.float32), (32, 32)) / 255.0).numpy()
y = digits.target
order = np.random.default_rng(seed).permutation(len(x))
held = int(round(len(x) * 0.2))
val, train = np.sort(order[:held]), np.sort(order[held:])

def augment(images, labels):
    """rotate ±8° about the centre and shift ±6%, one bilinear resample, reflected edges."""
    n, size = tf.shape(images)[0], 32.0
    angle = tf.random.uniform([n], -8.0, 8.0) * (math.pi / 180)
    dx = tf.random.uniform([n], -0.06, 0.06) * size
    dy = tf.random.uniform([n], -0.06, 0.06) * size
    cos, sin = tf.cos(angle), tf.sin(angle)
    # output pixel → input pixel: rotate about the centre, then shift
    x0 = ((size - 1) - (cos * (size - 1) - sin * (size - 1))) / 2 - (cos * dx - sin * dy)
    y0 = ((size - 1) - (sin * (size - 1) + cos * (size - 1))) / 2 - (sin * dx + cos * dy)
    zero = tf.zeros_like(cos)
    transforms = tf.stack([cos, -sin, x0, sin, cos, y0, zero, zero], axis=1)
    images = tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=[32, 32],
                                                    fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    return images, labels

training = (tf.data.Dataset.from_tensor_slices((x[train], y[train])).cache()
            .shuffle(len(train), seed=seed, reshuffle_each_iteration=True).batch(batch)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
validation = tf.data.Dataset.from_tensor_slices((x[val], y[val])).batch(batch).cache().prefetch(tf.data.AUTOTUNE)

model = keras.Sequential([
    keras.Input((32, 32, 1)),
    keras.layers.Conv2D(6, 5, activation="tanh"), keras.layers.AveragePooling2D(2),
    keras.layers.Conv2D(16, 5, activation="tanh"), keras.layers.AveragePooling2D(2),
    keras.layers.Conv2D(120, 5, activation="tanh"), keras.layers.Flatten(),
    keras.layers.Dense(84, activation="tanh"), keras.layers.Dense(10, activation="softmax")])
steps = math.ceil(len(train) / batch)
model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.002, epochs * steps)),
              "sparse_categorical_crossentropy", metrics=["accuracy"])

class Timer(keras.callbacks.Callback):
    rows = []
    def on_train_begin(self, logs=None): self.start = time.perf_counter()
    def on_epoch_begin(self, epoch, logs=None): self.began, self.trained = time.perf_counter(), None
    def on_test_begin(self, logs=None):
        if self.trained is None: self.trained = time.perf_counter() - self.began
    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch + 1, "val_accuracy": float(logs["val_accuracy"]),
                          "elapsed": time.perf_counter() - self.start, "trained": self.trained})

model.fit(training, epochs=epochs, validation_data=validation, callbacks=[Timer()], verbose=0)
print(json.dumps({"rows": Timer.rows, "train_images": len(train)}))
'''


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def hand_written(seed, epochs) -> dict:
    cpu = child_cpu()
    out = subprocess.run([sys.executable, "-c", HAND_WRITTEN, str(seed), str(epochs)], capture_output=True, text=True,
                         env=_env(), check=True)
    cpu = child_cpu() - cpu
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = result["rows"]
    return _summary([(r["val_accuracy"], r["elapsed"], result["train_images"] / r["trained"]) for r in rows],
                    result["train_images"] * len(rows) / cpu)


def cnnbuild(seed, epochs) -> dict:
    import csv
    with tempfile.TemporaryDirectory() as folder:
        cpu = child_cpu()
        subprocess.run([sys.executable, "-m", "cnnbuild.cli", "train", str(SPEC), "--out", folder, "--epochs", str(epochs),
                        "--set", f"train.seed={seed}"], capture_output=True, text=True, env=_env(), check=True, cwd=ROOT)
        cpu = child_cpu() - cpu
        with open(Path(folder) / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        with open(Path(folder) / "metrics.json") as f:
            train_images = json.load(f)["train_images"]
    elapsed, out = 0.0, []
    for row in rows:
        elapsed += float(row["seconds"])
        out.append((float(row["val_accuracy"]), elapsed, float(row["images_per_second"])))
    return _summary(out, train_images * len(rows) / cpu)


def _summary(rows, per_cpu_second) -> dict:
    """rows: (val_accuracy, seconds since fit started, images/second) per epoch."""
    reached = next(((epoch, elapsed) for epoch, (accuracy, elapsed, _) in enumerate(rows, 1) if accuracy >= TARGET),
                   (None, None))
    rates = [rate for _, _, rate in rows[1:]] or [rows[0][2]]
    return {"images_per_second": statistics.median(rates), "epoch_of_target": reached[0], "time_to_target": reached[1],
            "final_val_accuracy": rows[-1][0], "images_per_cpu_second": per_cpu_second}


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return env


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=25, help="the spec's 25 unless given (the schedule follows)")
    args = parser.parse_args(argv)
    print(f"# {load()}", flush=True)
    results = {"cnnbuild": [], "keras": []}
    for seed in range(args.runs):
        for side, run in (("keras", hand_written), ("cnnbuild", cnnbuild)) if seed % 2 else \
                (("cnnbuild", cnnbuild), ("keras", hand_written)):
            result = run(seed, args.epochs)
            results[side].append(result)
            reached = "—" if result["time_to_target"] is None else \
                f"{result['time_to_target']:.2f}s (epoch {result['epoch_of_target']})"
            print(f"run {seed + 1}/{args.runs} {side:8s}: {result['images_per_second']:8,.0f} img/s, "
                  f"{result['images_per_cpu_second']:6,.0f} img/CPU-s, {TARGET:.0%} after {reached}, "
                  f"final val_accuracy {result['final_val_accuracy']:.4f}", flush=True)
    print(f"# {load()}")
    medians = {}
    for side, rows in results.items():
        times = [r["time_to_target"] for r in rows if r["time_to_target"] is not None]
        medians[side] = {key: statistics.median(r[key] for r in rows) for key in ("images_per_second", "images_per_cpu_second")}
        medians[side].update(time_to_target=statistics.median(times) if times else None, reached=f"{len(times)}/{len(rows)}")
    for side in ("keras", "cnnbuild"):
        m = medians[side]
        time_text = "never" if m["time_to_target"] is None else f"{m['time_to_target']:.2f}s"
        print(f"{side:8s} median: {m['images_per_second']:8,.0f} img/s, {m['images_per_cpu_second']:6,.0f} img/CPU-s; "
              f"{TARGET:.0%} reached in {m['reached']} runs, median {time_text}")
    for key, label in (("images_per_second", "images/second"), ("images_per_cpu_second", "images/CPU-second")):
        print(f"{label} ratio (cnnbuild / hand-written): {medians['cnnbuild'][key] / medians['keras'][key]:.3f}")
    if medians["cnnbuild"]["time_to_target"] and medians["keras"]["time_to_target"]:
        ratio = medians["keras"]["time_to_target"] / medians["cnnbuild"]["time_to_target"]
        print(f"time-to-{TARGET:.0%} ratio (hand-written / cnnbuild; above 1 = cnnbuild faster): {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

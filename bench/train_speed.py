"""`cnnbuild train` against the same model written by hand in Keras, on the same data.

    python bench/train_speed.py [--runs 5] [--epochs 15]

Both sides train LeNet-5 (specs/lenet5.yaml's layers: 61,706 parameters) on scikit-learn's
8×8 digits resized to 32×32, with the same seeded 20% validation split, Adam 0.001,
batch 32, no augmentation, validating after every epoch. Each run is its own process, the
two sides alternating, seeds 0…runs−1 on both. Per run:

  images/second   training images / the training part of an epoch (validation excluded),
                  the median over epochs after the first (which includes tracing);
  time to 97%     seconds from the start of fit() to the end of the first epoch whose
                  validation accuracy is at least 0.97 (validation, and for cnnbuild its
                  per-epoch checkpoint, included).

Printed: the medians of both sides and the ratios cnnbuild / hand-written for images per
second and hand-written / cnnbuild for time to 97% (so above 1 means cnnbuild is faster;
the goal is at least 0.97). Process start-up (importing TensorFlow) is not measured.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "lenet5.yaml"
TARGET = 0.97

HAND_WRITTEN = r'''
import json, sys, time
import numpy as np, tensorflow as tf, keras
from sklearn.datasets import load_digits

seed, epochs = int(sys.argv[1]), int(sys.argv[2])
keras.utils.set_random_seed(seed)
digits = load_digits()
images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
x = (tf.image.resize(tf.cast(images, tf.float32), (32, 32)) / 255.0).numpy()
y = digits.target
order = np.random.default_rng(seed).permutation(len(x))
held = int(round(len(x) * 0.2))
val, train = np.sort(order[:held]), np.sort(order[held:])

model = keras.Sequential([
    keras.Input((32, 32, 1)),
    keras.layers.Conv2D(6, 5, activation="tanh"), keras.layers.AveragePooling2D(2),
    keras.layers.Conv2D(16, 5, activation="tanh"), keras.layers.AveragePooling2D(2),
    keras.layers.Conv2D(120, 5, activation="tanh"), keras.layers.Flatten(),
    keras.layers.Dense(84, activation="tanh"), keras.layers.Dense(10, activation="softmax")])
model.compile(keras.optimizers.Adam(0.001), "sparse_categorical_crossentropy", metrics=["accuracy"])

class Timer(keras.callbacks.Callback):
    rows = []
    def on_train_begin(self, logs=None): self.start = time.perf_counter()
    def on_epoch_begin(self, epoch, logs=None): self.began, self.trained = time.perf_counter(), None
    def on_test_begin(self, logs=None):
        if self.trained is None: self.trained = time.perf_counter() - self.began
    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch + 1, "val_accuracy": float(logs["val_accuracy"]),
                          "elapsed": time.perf_counter() - self.start, "trained": self.trained})

model.fit(x[train], y[train], batch_size=32, epochs=epochs, validation_data=(x[val], y[val]), callbacks=[Timer()],
          verbose=0)
print(json.dumps({"rows": Timer.rows, "train_images": len(train)}))
'''


def hand_written(seed, epochs) -> dict:
    out = subprocess.run([sys.executable, "-c", HAND_WRITTEN, str(seed), str(epochs)], capture_output=True, text=True,
                         env=_env(), check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = result["rows"]
    return _summary([(r["val_accuracy"], r["elapsed"], result["train_images"] / r["trained"]) for r in rows])


def cnnbuild(seed, epochs) -> dict:
    import csv
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "cnnbuild.cli", "train", str(SPEC), "--out", folder, "--epochs", str(epochs),
                        "--set", "augment=[]", "--set", "train.schedule=constant",
                        "--set", "train.optimizer.learning_rate=0.001", "--set", f"train.seed={seed}"],
                       capture_output=True, text=True, env=_env(), check=True, cwd=ROOT)
        with open(Path(folder) / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    elapsed, out = 0.0, []
    for row in rows:
        elapsed += float(row["seconds"])
        out.append((float(row["val_accuracy"]), elapsed, float(row["images_per_second"])))
    return _summary(out)


def _summary(rows) -> dict:
    """rows: (val_accuracy, seconds since fit started, images/second) per epoch."""
    reached = next(((epoch, elapsed) for epoch, (accuracy, elapsed, _) in enumerate(rows, 1) if accuracy >= TARGET),
                   (None, None))
    rates = [rate for _, _, rate in rows[1:]] or [rows[0][2]]
    return {"images_per_second": statistics.median(rates), "epoch_of_target": reached[0], "time_to_target": reached[1],
            "final_val_accuracy": rows[-1][0]}


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    results = {"cnnbuild": [], "keras": []}
    for seed in range(args.runs):
        for side, run in (("keras", hand_written), ("cnnbuild", cnnbuild)) if seed % 2 else \
                (("cnnbuild", cnnbuild), ("keras", hand_written)):
            result = run(seed, args.epochs)
            results[side].append(result)
            reached = "—" if result["time_to_target"] is None else \
                f"{result['time_to_target']:.2f}s (epoch {result['epoch_of_target']})"
            print(f"run {seed + 1}/{args.runs} {side:8s}: {result['images_per_second']:8,.0f} img/s, "
                  f"{TARGET:.0%} after {reached}, final val_accuracy {result['final_val_accuracy']:.4f}", flush=True)
    medians = {}
    for side, rows in results.items():
        times = [r["time_to_target"] for r in rows if r["time_to_target"] is not None]
        medians[side] = {"images_per_second": statistics.median(r["images_per_second"] for r in rows),
                         "time_to_target": statistics.median(times) if times else None,
                         "reached": f"{len(times)}/{len(rows)}"}
    print()
    for side in ("keras", "cnnbuild"):
        m = medians[side]
        time_text = "never" if m["time_to_target"] is None else f"{m['time_to_target']:.2f}s"
        print(f"{side:8s} median: {m['images_per_second']:8,.0f} img/s; {TARGET:.0%} reached in {m['reached']} runs, "
              f"median {time_text}")
    speed = medians["cnnbuild"]["images_per_second"] / medians["keras"]["images_per_second"]
    print(f"images/second ratio (cnnbuild / hand-written): {speed:.3f}")
    if medians["cnnbuild"]["time_to_target"] and medians["keras"]["time_to_target"]:
        ratio = medians["keras"]["time_to_target"] / medians["cnnbuild"]["time_to_target"]
        print(f"time-to-{TARGET:.0%} ratio (hand-written / cnnbuild; above 1 = cnnbuild faster): {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

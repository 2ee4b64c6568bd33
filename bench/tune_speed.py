"""`cnnbuild tune` against keras-tuner driven by a hand-written `build(hp)` over the same space.

    python bench/tune_speed.py [--runs 3] [--trials 3]

The space: the first convolution's filters in {4, 64, 8, 128, 256, 512} and the learning
rate log-uniform in [1e-3, 1e-2], a budget of 2,000 parameters (only 4 and 8 filters fit),
on the digits at 8×8, one epoch per trial, batch 64, seeded random search. Both sides:

  cnnbuild   `cnnbuild tune SPEC --trials N --max-params 2000`: candidates over budget are
             refused by the static check inside the oracle, never built;
  keras      keras_tuner.RandomSearch(build, max_model_size=2000): keras-tuner builds every
             candidate's Keras model to count its parameters, and skips the oversized ones.

Each run is its own process (TensorFlow's import included on both sides), the sides
alternating; printed: the medians of wall and CPU seconds, their ratios keras / cnnbuild
(above 1: cnnbuild faster), the load average, and how many candidates cnnbuild refused
statically.
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHOICES = [4, 64, 8, 128, 256, 512]
SPEC = f"""\
name: tiny
input: [8, 8, 1]
layers:
  - conv: {{filters: 8, kernel: 3, padding: same, activation: relu}}
  - max_pool: 2
  - flatten
  - dense: {{units: 10, activation: softmax}}
data: {{source: digits}}
train: {{epochs: 1, batch_size: 64}}
search:
  layers.0.conv.filters: {CHOICES}
  train.optimizer.learning_rate: {{min: 1e-3, max: 1e-2, log: true}}
"""
HAND_WRITTEN = r'''
import sys, numpy as np, keras, keras_tuner as kt, tensorflow as tf
from sklearn.datasets import load_digits
trials, out = int(sys.argv[1]), sys.argv[2]
digits = load_digits()
x = (digits.images / 16.0).astype("float32")[..., None]
y = digits.target
order = np.random.default_rng(0).permutation(len(x))
held = int(round(len(x) * 0.2))
x_val, y_val, x_train, y_train = x[order[:held]], y[order[:held]], x[order[held:]], y[order[held:]]

def build(hp):
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(hp.Choice("filters", %s), 3, padding="same", activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=trials, max_model_size=2000, seed=0,
                        directory=out, project_name="hand", max_consecutive_failed_trials=50)
tuner.search(x_train, y_train, epochs=1, batch_size=64, validation_data=(x_val, y_val), verbose=0)
''' % CHOICES


def timed(command, env) -> tuple:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    sides = {"cnnbuild": [], "keras": []}
    refused = []
    with tempfile.TemporaryDirectory() as scratch:
        spec = Path(scratch) / "tiny.yaml"
        spec.write_text(SPEC, encoding="utf-8")
        for run in range(args.runs):
            out = Path(scratch) / f"cnnbuild{run}"
            sides["cnnbuild"].append(timed([sys.executable, "-m", "cnnbuild.cli", "tune", str(spec), "--trials",
                                            str(args.trials), "--out", str(out), "--max-params", "2000"], env))
            with open(out / "trials.csv", newline="", encoding="utf-8") as f:
                refused.append(sum(1 for row in csv.DictReader(f) if row["status"] == "over budget"))
            sides["keras"].append(timed([sys.executable, "-c", HAND_WRITTEN, str(args.trials),
                                         str(Path(scratch) / f"keras{run}")], env))
    median = {side: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
              for side, runs in sides.items()}
    for side, (wall, cpu) in median.items():
        print(f"{side:9s} wall {wall:6.2f} s   cpu {cpu:6.2f} s   (median of {args.runs})")
    print(f"keras / cnnbuild: wall {median['keras'][0] / median['cnnbuild'][0]:.2f}×, "
          f"cpu {median['keras'][1] / median['cnnbuild'][1]:.2f}×; load average {os.getloadavg()[0]:.2f}; "
          f"cnnbuild refused {statistics.median(refused):g} candidates statically (median), training none of them")


if __name__ == "__main__":
    main()

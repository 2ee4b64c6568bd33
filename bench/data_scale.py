"""Datasets of growing size: `cnnbuild train` against Keras's image_dataset_from_directory
with the same model, on class-folder directories of 64×64 RGB JPEG files.

    python bench/data_scale.py                      # N = 2,000, 10,000, 40,000; 3 runs each
    python bench/data_scale.py --sizes 2000 --repeats 1

For each N and each side, one epoch of the same small CNN (built from the same spec) in a
fresh process: start-up (process start to the first training step: imports, file listing
and checks, model build; for cnnbuild until its header line, printed just before training),
epoch seconds (cnnbuild: metrics.json's training_seconds; Keras: first batch to the end of
fit), and peak RSS (the child's ru_maxrss). cnnbuild runs twice: with `cache: auto` (which
keeps the decoded images in memory when they fit a quarter of physical memory, so its RSS
grows by the decoded set, 64·64·3·4 bytes an image) and with `cache: false` (streaming). Medians over --repeats. The folders are generated once into
--root (default /tmp/cnnbuild-data-scale) and reused. Numbers on a shared machine vary;
compare the ratios of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLASSES = 10
SIZE = 64
SPEC = f"""\
name: scale
input: [{SIZE}, {SIZE}, 3]
layers:
  - conv: {{filters: 16, kernel: 3, padding: same, activation: relu}}
  - max_pool: 2
  - conv: {{filters: 32, kernel: 3, padding: same, activation: relu}}
  - max_pool: 2
  - global_avg_pool
  - dense: {{units: {CLASSES}, activation: softmax}}
data: {{validation_split: 0}}
train: {{epochs: 1, batch_size: 64}}
"""

KERAS_SIDE = """\
import json, resource, sys, time
started = float(sys.argv[3])
import keras
from cnnbuild import build_model, load_spec
keras.utils.set_random_seed(0)
data = keras.utils.image_dataset_from_directory(sys.argv[1], image_size=(64, 64), batch_size=64, seed=0,
                                                label_mode="int")
data = data.map(lambda x, y: (x / 255.0, y)).prefetch(-1)
model = build_model(load_spec(sys.argv[2]))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
class Clock(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.first = time.time()
clock = Clock()
model.fit(data, epochs=1, verbose=0, callbacks=[clock])
end = time.time()
print(json.dumps({"startup": clock.first - started, "epoch": end - clock.first,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CNNBUILD_SIDE = """\
import json, resource, sys, time
started = float(sys.argv[4])
class Clock:   # stdout that notes when train's header line (printed just before the first step) appears
    def __init__(self, out):
        self.out, self.first = out, None
    def write(self, text):
        if self.first is None and "input: " in text:
            self.first = time.time()
        return self.out.write(text)
    def __getattr__(self, name):
        return getattr(self.out, name)
sys.stdout = clock = Clock(sys.stdout)
from cnnbuild.cli import main
status = main(["train", sys.argv[2], "--data", sys.argv[1], "--out", sys.argv[3], "--set", "data.cache=" + sys.argv[5]])
metrics = json.load(open(sys.argv[3] + "/metrics.json"))
sys.stdout = clock.out
print(json.dumps({"startup": clock.first - started, "epoch": metrics["training_seconds"], "status": status,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_folders(root: Path, count: int) -> Path:
    """`count` random-textured 64×64 JPEG files in 10 class folders (written once)."""
    import numpy as np
    from PIL import Image
    folder = root / f"jpeg-{count}"
    done = folder / ".complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(count)
    for label in range(CLASSES):
        (folder / f"class_{label}").mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, (CLASSES, 8, 8, 3), dtype=np.uint8)
    for i in range(count):
        label = i % CLASSES
        small = np.clip(base[label].astype(int) + rng.integers(-40, 40, (8, 8, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(small).resize((SIZE, SIZE), Image.BILINEAR).save(folder / f"class_{label}" / f"{i:06d}.jpg",
                                                                          quality=90)
    done.write_text("")
    return folder


def run_side(code, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args[:3]), str(time.time()), *map(str, args[3:])],
                          capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"a benchmark run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 40000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "cnnbuild-data-scale"))
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "scale.yaml"
    spec.write_text(SPEC)
    print(f"{'N':>7} {'side':9} {'start-up s':>10} {'epoch s':>8} {'peak RSS MiB':>12}")
    for count in args.sizes:
        folder = make_folders(root, count)
        results = {"cnnbuild": [], "cnb-nocache": [], "keras": []}
        for repeat in range(args.repeats):
            out = root / f"run-{count}-{repeat}-{os.getpid()}"
            results["cnnbuild"].append(run_side(CNNBUILD_SIDE, folder, spec, out, "auto"))
            results["cnb-nocache"].append(run_side(CNNBUILD_SIDE, folder, spec, f"{out}-nocache", "false"))
            results["keras"].append(run_side(KERAS_SIDE, folder, spec))
        medians = {}
        for side, rows in results.items():
            medians[side] = {k: statistics.median(r[k] for r in rows) for k in ("startup", "epoch", "rss_mib")}
            m = medians[side]
            print(f"{count:>7,} {side:9} {m['startup']:>10.1f} {m['epoch']:>8.1f} {m['rss_mib']:>12,.0f}")
        for side in ("cnnbuild", "cnb-nocache"):
            ratio = {k: medians[side][k] / medians["keras"][k] for k in ("startup", "epoch", "rss_mib")}
            print(f"{count:>7,} {'÷ keras':9} {ratio['startup']:>10.2f} {ratio['epoch']:>8.2f} {ratio['rss_mib']:>12.2f}"
                  f"   ({side})", flush=True)


if __name__ == "__main__":
    main()

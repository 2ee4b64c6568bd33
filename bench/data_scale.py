"""Datasets of growing size: `cnnbuild train` against Keras's image_dataset_from_directory
with the same model, on class-folder directories of 64×64 RGB JPEG files, and on the same
images packed into TFRecord shards (`cnnbuild data pack`).

    python bench/data_scale.py                      # N = 2,000, 10,000, 40,000; 3 runs each
    python bench/data_scale.py --sizes 2000 --repeats 1
    python bench/data_scale.py --sizes 3000 12000 --sides keras cnb-auto   # the default cache's memory only

For each N and each side, one epoch of the same small CNN (built from the same spec) in a
fresh process, the sides interleaved within each repeat so that the load of a shared
machine falls on all of them: time to the first step (process start to the first training
batch, Keras's on_train_batch_begin for batch 0 on every side: imports, file listing and
header checks, model build, pipeline start), epoch seconds (first batch to the end of the
epoch), and peak RSS (the child's ru_maxrss). cnnbuild runs with `cache: false`
(streaming: the sides compare like for like) on the folder (`cnnbuild`) and on its shards
(`packed`), and with the default `cache: auto` (`cnb-auto`), which keeps the decoded
images in memory when they fit a quarter of physical memory, so its RSS grows by the
decoded set, 64·64·3 bytes an image (uint8; float32 until issue 22: 1.70× Keras's peak RSS
at 12,000 files, +45% from 3,000). Medians over --repeats; ratios to Keras's medians.
The folders and packs are generated once into --root (default /tmp/cnnbuild-data-scale)
and reused. `uptime`'s load is printed before each N and at the end.
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
model.fit(data, epochs=1, verbose=0, callbacks=[clock])   # no validation: the end of fit is the end of the epoch
end = time.time()
print(json.dumps({"startup": clock.first - started, "epoch": end - clock.first,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CNNBUILD_SIDE = """\
import json, resource, sys, time
started = float(sys.argv[4])
import keras
class Clock(keras.callbacks.Callback):   # the same clock as the Keras side's, added to cnnbuild's fit
    first = None
    def on_train_batch_begin(self, batch, logs=None):
        if Clock.first is None:
            Clock.first = time.time()
    def on_epoch_end(self, epoch, logs=None):
        Clock.end = time.time()
fit = keras.Model.fit
def clocked_fit(self, *args, callbacks=None, **kwargs):
    return fit(self, *args, callbacks=[*(callbacks or []), Clock()], **kwargs)
keras.Model.fit = clocked_fit
from cnnbuild.cli import main
status = main(["train", sys.argv[2], "--data", sys.argv[1], "--out", sys.argv[3], "--set", "data.cache=" + sys.argv[5]])
print(json.dumps({"startup": Clock.first - started, "epoch": Clock.end - Clock.first, "status": status,
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


def packed(root: Path, folder: Path) -> Path:
    """The folder packed into shards once (`cnnbuild data pack`, one shard per 2,000 images)."""
    out = root / f"packed-{folder.name}"
    if not (out / "index.json").exists():
        done = subprocess.run([sys.executable, "-c", "import sys; from cnnbuild.cli import main; "
                               "sys.exit(main(sys.argv[1:]))", "data", "pack", str(folder), "--out", str(out)],
                              capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if done.returncode:
            raise SystemExit(f"packing {folder} failed:\n{done.stderr[-2000:]}")
    return out


def run_side(code, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args[:3]), str(time.time()), *map(str, args[3:])],
                          capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"a benchmark run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


KEYS = ("startup", "epoch", "rss_mib")
SIDES = ("keras", "cnnbuild", "packed", "cnb-auto")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 40000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "cnnbuild-data-scale"))
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES), help="keras always runs")
    parser.add_argument("--json", help="write every run and the medians to this file")
    args = parser.parse_args()
    root = Path(args.root)
    sides = ["keras", *(side for side in SIDES if side in args.sides and side != "keras")]
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "scale.yaml"
    spec.write_text(SPEC)
    print(f"{'N':>7} {'side':9} {'first step s':>12} {'epoch s':>8} {'peak RSS MiB':>12}")
    every, table = {}, {}
    for count in args.sizes:
        folder = make_folders(root, count)
        shards = packed(root, folder) if "packed" in sides else None
        print(f"# {load()}", flush=True)
        results = {side: [] for side in sides}
        for repeat in range(args.repeats):
            out = root / f"run-{count}-{repeat}-{os.getpid()}"
            runs = {"keras": (KERAS_SIDE, folder, spec), "cnnbuild": (CNNBUILD_SIDE, folder, spec, out, "false"),
                    "packed": (CNNBUILD_SIDE, shards, spec, f"{out}-packed", "false"),
                    "cnb-auto": (CNNBUILD_SIDE, folder, spec, f"{out}-auto", "auto")}
            for side in sides:
                results[side].append(run_side(*runs[side]))
        medians = {}
        for side, rows in results.items():
            medians[side] = {k: statistics.median(r[k] for r in rows) for k in KEYS}
            m = medians[side]
            print(f"{count:>7,} {side:9} {m['startup']:>12.1f} {m['epoch']:>8.1f} {m['rss_mib']:>12,.0f}")
        for side in sides[1:]:
            ratio = {k: medians[side][k] / medians["keras"][k] for k in KEYS}
            print(f"{count:>7,} {'÷ keras':9} {ratio['startup']:>12.2f} {ratio['epoch']:>8.2f} {ratio['rss_mib']:>12.2f}"
                  f"   ({side})", flush=True)
        every[count], table[count] = results, medians
    print(f"# {load()}")
    if len(table) > 1:
        first, last = min(table), max(table)
        for side in sides:
            growth = table[last][side]["rss_mib"] / table[first][side]["rss_mib"] - 1
            print(f"peak RSS {first:,} → {last:,} files: {side} {growth:+.0%}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": every, "medians": table}, indent=1))


if __name__ == "__main__":
    main()

"""The end of training: how long `cnnbuild train`'s fit() takes to return after its last
epoch, and to free the data pipeline it leaves behind.

    python bench/fit_return.py [--runs 10] [--files 1200]
    python bench/fit_return.py --code before=/work/before --code after=.   # two trees, alternating

Each run is its own process: `cnnbuild train` (the code of one --code tree, first on
PYTHONPATH) trains a 6-convolution CNN with flip, rotate and translate for --epochs on a
class-folder directory of 48×48 JPEG files (written once into --root), the default cache
and a 20% validation split. Clocked inside the process:

  return s    the end of the last epoch's callbacks (the commit included) → fit() returned;
  free s      fit() returned → a garbage collection done (the pipeline Keras left in
              reference cycles freed: Python would free it at some later collection,
              wherever the program is then);
  end s       the two together: what a user waits for at the end of training.

The trees alternate run by run, so the load of a shared machine falls on both. Printed per
tree: the median and the largest of each, over --runs; `uptime`'s load before and after.
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

SIZE, CLASSES = 48, 10
SPEC = f"""\
name: fit_return
input: [{SIZE}, {SIZE}, 3]
layers:
  - conv: {{filters: 16, kernel: 3, padding: same, activation: relu}}
  - conv: {{filters: 16, kernel: 3, padding: same, activation: relu}}
  - max_pool: 2
  - conv: {{filters: 32, kernel: 3, padding: same, activation: relu}}
  - conv: {{filters: 32, kernel: 3, padding: same, activation: relu}}
  - max_pool: 2
  - conv: {{filters: 64, kernel: 3, padding: same, activation: relu}}
  - conv: {{filters: 64, kernel: 3, padding: same, activation: relu}}
  - global_avg_pool
  - dense: {{units: {CLASSES}, activation: softmax}}
data: {{validation_split: 0.2}}
augment: [flip, {{rotate: 10}}, {{translate: 0.1}}]
train: {{epochs: 2, batch_size: 64}}
"""

SIDE = """\
import gc, json, sys, time
import keras
marks = {}
class Clock(keras.callbacks.Callback):   # appended after cnnbuild's own: runs after the epoch's commit
    def on_epoch_end(self, epoch, logs=None):
        marks["epoch_end"] = time.perf_counter()
fit = keras.Model.fit
def clocked_fit(self, *args, callbacks=None, **kwargs):
    history = fit(self, *args, callbacks=[*(callbacks or []), Clock()], **kwargs)
    marks["returned"] = time.perf_counter()
    gc.collect()
    marks["freed"] = time.perf_counter()
    return history
keras.Model.fit = clocked_fit
from cnnbuild.cli import main
status = main(["train", sys.argv[1], "--data", sys.argv[2], "--out", sys.argv[3], "--epochs", sys.argv[4]])
print(json.dumps({"status": status, "return": marks["returned"] - marks["epoch_end"],
                  "free": marks["freed"] - marks["returned"], "end": marks["freed"] - marks["epoch_end"]}))
"""


def make_folder(root: Path, count: int) -> Path:
    """`count` random-textured JPEG files of mixed sizes around 48×48 in 10 class folders (written once)."""
    import numpy as np
    from PIL import Image
    folder = root / f"jpeg-{count}"
    if (folder / ".complete").exists():
        return folder
    rng = np.random.default_rng(count)
    base = rng.integers(0, 256, (CLASSES, 6, 6, 3), dtype=np.uint8)
    for i in range(count):
        label = i % CLASSES
        (folder / f"class_{label}").mkdir(parents=True, exist_ok=True)
        small = np.clip(base[label].astype(int) + rng.integers(-40, 40, (6, 6, 3)), 0, 255).astype(np.uint8)
        side = int(rng.integers(40, 64))
        Image.fromarray(small).resize((side, side), Image.BILINEAR).save(folder / f"class_{label}" / f"{i:05d}.jpg")
    (folder / ".complete").write_text("")
    return folder


def run(code: str, spec: Path, folder: Path, out: Path, epochs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", SIDE, str(spec), str(folder), str(out), str(epochs)],
                          capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"a run of {code} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--files", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--code", action="append", help="NAME=TREE (repeatable); default: this tree")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "cnnbuild-fit-return"))
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.code) if args.code else {"this": str(Path(__file__).parent.parent)}
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "fit_return.yaml"
    spec.write_text(SPEC)
    folder = make_folder(root, args.files)
    print(f"# {load()}", flush=True)
    results = {name: [] for name in trees}
    for index in range(args.runs):
        for name, code in trees.items():
            row = run(code, spec, folder, root / f"run-{name}-{index}-{os.getpid()}", args.epochs)
            results[name].append(row)
            print(f"run {index + 1} {name:8} return {row['return']:6.2f} s  free {row['free']:6.2f} s  "
                  f"end {row['end']:6.2f} s", flush=True)
    print(f"# {load()}")
    for name, rows in results.items():
        cells = "  ".join(f"{key} median {statistics.median(r[key] for r in rows):.2f} s, max {max(r[key] for r in rows):.2f} s"
                          for key in ("return", "free", "end"))
        print(f"{name:8} over {len(rows)} runs: {cells}")


if __name__ == "__main__":
    main()

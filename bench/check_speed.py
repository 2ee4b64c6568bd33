"""How much faster `cnnbuild check` is than merely importing TensorFlow (goal: more than 10×).

    python bench/check_speed.py [SPEC] [--runs N]

Times whole processes, as a user waits for them: `python -m cnnbuild.cli check SPEC` (the
largest zoo spec by default: specs/resnet50.yaml) and `python -c "import tensorflow"`, run
alternately N times each (default 7) so both see the same machine load, and prints the
medians and their ratio. The check must not import TensorFlow at all; this measures what
that buys.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 10.0


def largest_spec() -> Path:
    resnet50 = ROOT / "specs" / "resnet50.yaml"
    if resnet50.exists():
        return resnet50
    specs = sorted((ROOT / "specs").glob("*.yaml"), key=lambda p: p.stat().st_size)
    if not specs:
        sys.exit("no spec in specs/: give one on the command line")
    return specs[-1]


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", type=Path, help="spec to check (default: the largest zoo spec)")
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    args = parser.parse_args()
    spec = args.spec or largest_spec()
    check = [sys.executable, "-m", "cnnbuild.cli", "check", str(spec)]
    tensorflow = [sys.executable, "-c", "import tensorflow"]
    seconds(check), seconds(tensorflow)          # warm the file cache for both before timing
    check_times, tensorflow_times = [], []
    for _ in range(args.runs):
        check_times.append(seconds(check))
        tensorflow_times.append(seconds(tensorflow))
    check_median, tensorflow_median = statistics.median(check_times), statistics.median(tensorflow_times)
    ratio = tensorflow_median / check_median
    print(f"spec: {spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec}; {args.runs} runs each, medians")
    print(f"  cnnbuild check (whole process)     {check_median * 1000:8.0f} ms   "
          f"(min {min(check_times) * 1000:.0f}, max {max(check_times) * 1000:.0f})")
    print(f"  python -c 'import tensorflow'      {tensorflow_median * 1000:8.0f} ms   "
          f"(min {min(tensorflow_times) * 1000:.0f}, max {max(tensorflow_times) * 1000:.0f})")
    print(f"  ratio {ratio:.1f}× (goal > {GOAL:.0f}×): {'met' if ratio > GOAL else 'NOT met'}")
    return 0 if ratio > GOAL else 1


if __name__ == "__main__":
    sys.exit(main())

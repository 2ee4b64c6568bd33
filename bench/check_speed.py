"""How much faster `cnnbuild check` is than merely importing TensorFlow (goal: at least 40×),
and how its time grows with the number of layers (goal: 1,000 layers in under 0.2 s, 5,000
in under 1 s, linear).

    python bench/check_speed.py [SPEC] [--runs N]

Times whole processes, as a user waits for them: `python -m cnnbuild.cli check SPEC` (the
largest zoo spec by default: specs/resnet50.yaml) and `python -c "import tensorflow"`, run
alternately N times each (default 7) so both see the same machine load, and prints the
medians and their ratio, in CPU seconds (user + system, the children's own accounting from
getrusage: what a loaded machine does not inflate, and what the goals are judged on) beside
wall seconds, with the load average before and after. The check must not import TensorFlow at all; this measures what
that buys. Then it generates specs of 1,000 and 5,000 layers (convolutions, batchnorms,
activations and residual blocks, written out) and times reading and checking each in-process
(`load_spec` + `infer`, the median of N) and as a whole `cnnbuild check` process.
"""
from __future__ import annotations

import argparse
import atexit
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 40.0
DEEP = {1000: 0.2, 5000: 1.0}    # layers → the most CPU seconds checking them may take in-process


def deep_spec_text(layers: int) -> str:
    """A spec of exactly `layers` layers once written out (a residual counts with its body)."""
    lines = ["name: deep", "input: [16, 16, 3]", "layers:", "  - conv: {filters: 8, kernel: 3, padding: same}"]
    cycle = ["  - conv: {{filters: 8, kernel: 3, padding: same, name: c{}}}", "  - batchnorm", "  - relu",
             "  - residual: {{body: [{{conv: {{filters: 8, kernel: 1}}}}]}}"]
    count, i = 1, 0
    while count < layers - 2:
        lines.append(cycle[i % 4].format(i))
        count += 2 if i % 4 == 3 else 1
        i += 1
    lines += ["  - global_avg_pool", "  - dense: 10"]
    return "\n".join(lines) + "\n"


def in_process_seconds(path: Path, runs: int) -> float:
    sys.path.insert(0, str(ROOT))
    from cnnbuild.check.report import infer
    from cnnbuild.parse import load_spec
    times = []
    for _ in range(runs):
        start = cpu_seconds()
        report = infer(load_spec(path))
        times.append(cpu_seconds() - start)
        if not report.valid:
            sys.exit(f"{path}: the generated spec is invalid: {report.errors[:3]}")
    return statistics.median(times)


def deep_cases(runs: int) -> bool:
    """Time the generated 1,000- and 5,000-layer specs; True when every goal is met."""
    met = True
    with tempfile.TemporaryDirectory() as folder:
        per_layer = []
        for layers, goal in DEEP.items():
            path = Path(folder, f"deep{layers}.yaml")
            path.write_text(deep_spec_text(layers), encoding="utf-8")
            inside = in_process_seconds(path, runs)
            process = statistics.median(timed([sys.executable, "-m", "cnnbuild.cli", "check", str(path)])[0]
                                        for _ in range(max(1, runs // 2)))
            per_layer.append(inside / layers)
            met &= inside < goal
            print(f"  {layers:,} layers: check in-process {inside * 1000:6.0f} ms of CPU (goal < {goal * 1000:.0f}: "
                  f"{'met' if inside < goal else 'NOT met'}); whole process {process * 1000:.0f} ms of CPU; "
                  f"{inside / layers * 1e6:.0f} µs a layer")
        growth = per_layer[-1] / per_layer[0]
        print(f"  time a layer at 5,000 / at 1,000: {growth:.2f} (linear: about 1)")
    return met


def largest_spec() -> Path:
    resnet50 = ROOT / "specs" / "resnet50.yaml"
    if resnet50.exists():
        return resnet50
    specs = sorted((ROOT / "specs").glob("*.yaml"), key=lambda p: p.stat().st_size)
    if not specs:
        sys.exit("no spec in specs/: give one on the command line")
    return specs[-1]


# Both commands run with their bytecode cached, as an installed package has it (pip compiles
# on install): where PYTHONDONTWRITEBYTECODE is set, every run would compile cnnbuild's
# sources again (~0.1 s), so the cache goes to a folder of this run's instead.
PYCACHE = tempfile.mkdtemp(prefix="cnnbuild-bench-pycache-")
atexit.register(shutil.rmtree, PYCACHE, ignore_errors=True)
ENVIRONMENT = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPYCACHEPREFIX": PYCACHE}


def timed(command: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one whole process: its user + system time, as the kernel
    accounted it for the reaped child, and the clock from its start to its exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=ENVIRONMENT)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), elapsed


def seconds(command: list[str]) -> float:
    return timed(command)[1]


def cpu_seconds() -> float:
    """This process's own CPU time (user + system), for the in-process timings."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", type=Path, help="spec to check (default: the largest zoo spec)")
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    args = parser.parse_args()
    spec = args.spec or largest_spec()
    check = [sys.executable, "-m", "cnnbuild.cli", "check", str(spec)]
    tensorflow = [sys.executable, "-c", "import tensorflow"]
    seconds(check), seconds(tensorflow)          # warm the file and bytecode caches for both before timing
    print(f"before: {load()}")
    check_times, tensorflow_times = [], []
    for _ in range(args.runs):                    # interleaved: both sides see the same load
        check_times.append(timed(check))
        tensorflow_times.append(timed(tensorflow))
    print(f"after:  {load()}")
    print(f"spec: {spec.relative_to(ROOT) if spec.is_relative_to(ROOT) else spec}; {args.runs} runs each, medians")
    ratios = {}
    for index, what in enumerate(("CPU", "wall")):
        ours = sorted(t[index] for t in check_times)
        theirs = sorted(t[index] for t in tensorflow_times)
        ratios[what] = statistics.median(theirs) / statistics.median(ours)
        print(f"  {what:4s} cnnbuild check (whole process) {statistics.median(ours) * 1000:7.0f} ms "
              f"(min {ours[0] * 1000:.0f}, max {ours[-1] * 1000:.0f});  python -c 'import tensorflow' "
              f"{statistics.median(theirs) * 1000:7.0f} ms (min {theirs[0] * 1000:.0f}, max {theirs[-1] * 1000:.0f})"
              f";  ratio {ratios[what]:.1f}×")
    ratio = ratios["CPU"]
    print(f"  ratio in CPU time {ratio:.1f}× (goal ≥ {GOAL:.0f}×): {'met' if ratio >= GOAL else 'NOT met'}"
          f"  (by the clock {ratios['wall']:.1f}×, which a loaded machine distorts)")
    deep = deep_cases(args.runs)
    return 0 if ratio >= GOAL and deep else 1


if __name__ == "__main__":
    sys.exit(main())

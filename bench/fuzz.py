"""A seeded mutation fuzzer for `cnnbuild check`: every spec in specs/ and tests/specs,
changed at the level of its structure (keys and list items deleted, duplicated or swapped,
values replaced by other types, huge and negative numbers, deep nesting, odd strings) and of
its bytes (bits flipped, bytes inserted or deleted, control characters), each mutant checked
in-process, some with hostile data paths (a FIFO, a link loop, a dangling link, a path
too long for the system) that check must name, never hang on. Every mutant must end in a SpecError or UsageError whose problems are located,
or in a Report; anything else is a crash. Prints the counts by outcome and the slowest case.

    python bench/fuzz.py [--cases 10000] [--seed 0]

tests/test_fuzz.py runs a few thousand of the same cases in CI.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnnbuild import check as infer, load_spec    # noqa: E402  (a spec of any family; a GanSpec gives a GanReport)
from cnnbuild.cli import main                      # noqa: E402
from cnnbuild.errors import SpecError, UsageError  # noqa: E402

SEEDS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "tests" / "specs").rglob("*.yaml"))
ODD_STRINGS = ["", " ", "${", "${filters * 2}", "$index", "$nope", "${10**400}", "${1/0}", "é" * 40, "x" * 5000,
               "input", "relu", "same", "-1", "1e999", "nan", ".inf", "null", "~", "yes", "0x10", "010", "1:30",
               "!!python/object:os.system", "&a", "*a", "\t", "[", "{", "a: b", "../../../../etc/passwd", "/dev/zero"]
NUMBERS = [0, -1, 1, 2, 3, 7, 2**31, -2**31, 10**17, -10**17, 999999999999999999, 10**18, 10**30, 0.5, -0.5, 1e-9,
           1e300, True, False, None]
HOSTILE = []   # data paths made by `hostile_paths` in the run's folder: a FIFO, a dangling link, a loop, a long path
CONTROL = [bytes([c]) for c in (0, 1, 7, 8, 11, 12, 27, 127)] + [b"\xc3", b"\xff", b"\xef\xbb\xbf", b"\r", b"\t"]


def _places(data, path=()):
    yield path, data
    children = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in list(children):
        yield from _places(value, path + (key,))


def _other_value(rng, places):
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(NUMBERS)
    if roll < 0.6:
        return rng.choice(ODD_STRINGS)
    if roll < 0.7:
        value = rng.choice(NUMBERS + ODD_STRINGS)
        for _ in range(rng.randint(1, 80)):        # deep nesting, past the 64-level limit at times
            value = [value] if rng.random() < 0.5 else {"a": value}
        return value
    if roll < 0.8:
        return [] if rng.random() < 0.5 else {}
    return copy.deepcopy(rng.choice(places)[1])   # another part of the spec


def mutate_structure(rng, data):
    """Change one to four places of the parsed spec; returns the data (changed in place)."""
    for _ in range(rng.randint(1, 4)):
        places = [p for p in _places(data) if p[0]]
        if not places:
            return _other_value(rng, [((), data)])
        path, node = rng.choice(places)
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        key, roll = path[-1], rng.random()
        if roll < 0.4:
            parent[key] = _other_value(rng, places)
        elif roll < 0.55:
            del parent[key]
        elif roll < 0.7 and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))          # duplicate an item
        elif roll < 0.8 and isinstance(parent, list) and len(parent) > 1:
            other = rng.randrange(len(parent))
            parent[key], parent[other] = parent[other], parent[key]
        elif roll < 0.9 and isinstance(parent, dict) and len(parent) > 1:
            other = rng.choice(list(parent))                     # swap two keys' values
            parent[key], parent[other] = parent[other], parent[key]
        elif isinstance(parent, dict):
            parent[rng.choice(["name", "times", "layers", "inputs", "with", "body", "shortcut", "padding", "size",
                               "filters", "units", "shape", "spec", str(key) + "x"])] = parent.pop(key)
    return data


def mutate_bytes(rng, raw: bytes) -> bytes:
    """Flip, insert or delete one to four bytes, or copy a chunk elsewhere."""
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        i, roll = rng.randrange(len(data) + 1), rng.random()
        if roll < 0.25 and i < len(data):
            data[i] ^= 1 << rng.randrange(8)
        elif roll < 0.5:
            data[i:i] = rng.choice(CONTROL + [bytes([rng.randrange(256)])] + [c.encode() for c in ":-[]{}&*!|>'\"#\n $"])
        elif roll < 0.75 and i < len(data):
            del data[i]
        else:
            j = rng.randrange(len(data) + 1)
            data[i:i] = data[j:j + rng.randint(1, 40)]
    return bytes(data)


def hostile_paths(folder: Path) -> list:
    """Data paths that must be named, never followed into a hang or an OSError: a FIFO (as a
    tfrecord and as an npz), a class folder holding a FIFO, a dangling link and a loop of
    links, a loop as the data folder itself, and paths too long for the system."""
    import os
    root = folder / "hostile"
    (root / "classes" / "a").mkdir(parents=True)
    os.mkfifo(root / "pipe.tfrecord")
    os.mkfifo(root / "pipe.npz")
    os.mkfifo(root / "classes" / "a" / "pipe.png")
    (root / "classes" / "a" / "gone.png").symlink_to(root / "nowhere.png")
    (root / "classes" / "a" / "loop.png").symlink_to(root / "classes" / "a" / "loop.png")
    (root / "loop").symlink_to(root / "loop")
    return [str(root / name) for name in ("pipe.tfrecord", "pipe.npz", "classes", "loop")] + \
        [str(root / ("x" * 300) / "data"), str(root / "/".join(["y" * 200] * 25)) + ".npz"]


def mutants(seed: int, cases: int):
    """(case number, seed spec, bytes) for `cases` mutants, the same for the same seed."""
    rng = random.Random(seed)
    texts = [(path, path.read_bytes()) for path in SEEDS]
    parsed = {}
    for path, raw in texts:
        try:
            data = yaml.safe_load(raw)
            if sum(1 for _ in zip(range(5001), _places(data))) <= 5000:   # not an alias bomb (billion_laughs.yaml)
                parsed[path] = data
        except Exception:   # noqa: BLE001 — bad fixtures that PyYAML itself cannot read: byte mutations only
            pass
    for case in range(cases):
        path, raw = rng.choice(texts)
        if path in parsed and rng.random() < 0.6:
            data = mutate_structure(rng, copy.deepcopy(parsed[path]))
            if HOSTILE and isinstance(data, dict) and rng.random() < 0.05:    # hostile data for `check`
                data["data"] = {"source": rng.choice(HOSTILE), "on_bad": rng.choice(["skip", "error"])}
            out = yaml.safe_dump(data, sort_keys=False, allow_unicode=rng.random() < 0.5).encode("utf-8")
        else:
            out = mutate_bytes(rng, raw)
        yield case, path, out


def _located(problems) -> bool:
    return bool(problems) and all(p.where.file and p.where.line >= 1 and p.where.column >= 1 and p.message
                                  for p in problems)


def outcome(path: Path) -> str:
    """How checking the spec at `path` ends: 'valid', 'invalid' (the report's errors),
    'refused' (a SpecError), 'unreadable' (a UsageError); raises AssertionError for
    unlocated problems, and lets any other exception through (a crash)."""
    try:
        spec = load_spec(path)
    except SpecError as e:
        assert _located(e.problems), f"a SpecError without located problems: {e.problems}"
        return "refused"
    except UsageError:
        return "unreadable"
    report = infer(spec)
    if report.valid:
        return "valid"
    assert _located(report.errors), f"a report error without its place: {report.errors}"
    return "invalid"


def _strict(constant):
    raise ValueError(f"{constant} is not strict JSON")


def check_json(path: Path) -> int:
    """`cnnbuild check --json PATH` in-process: its exit status, after asserting that it
    printed one strict JSON document (no NaN, no Infinity) or, for exit 2, nothing."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(["check", "--json", str(path)])
    assert status in (0, 1, 2), f"exit status {status}"
    if status != 2:
        document = json.loads(out.getvalue(), parse_constant=_strict)
        assert isinstance(document, dict) and document["valid"] is (status == 0)
    return status


def run(seed: int, cases: int, folder: Path, json_every: int = 5):
    """Counts by outcome, the crashes (case, seed spec, text, traceback) and the slowest case."""
    counts, crashes, slowest = Counter(), [], (0.0, None)
    HOSTILE[:] = hostile_paths(folder)
    path = folder / "mutant.yaml"
    for case, origin, raw in mutants(seed, cases):
        path.write_bytes(raw)
        start = time.perf_counter()
        try:
            counts[outcome(path)] += 1
            if case % json_every == 0:
                check_json(path)
        except Exception:   # noqa: BLE001 — what the fuzzer is looking for
            counts["crash"] += 1
            crashes.append((case, origin, raw, traceback.format_exc()))
        seconds = time.perf_counter() - start
        if seconds > slowest[0]:
            slowest = (seconds, (case, origin.name))
    return counts, crashes, slowest


def main_(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        counts, crashes, (seconds, where) = run(args.seed, args.cases, Path(folder))
    total = time.perf_counter() - start
    print(f"{args.cases:,} mutants of {len(SEEDS)} specs (seed {args.seed}) in {total:.1f} s")
    for name, count in counts.most_common():
        print(f"  {name:10s} {count:6,}  ({100 * count / args.cases:.1f} %)")
    print(f"  slowest: {seconds * 1000:.0f} ms (case {where[0]}, from {where[1]})" if where else "")
    for case, origin, raw, trace in crashes[:5]:
        print(f"\n--- crash in case {case} (from {origin.name}) ---\n{raw[:2000]!r}\n{trace}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main_())

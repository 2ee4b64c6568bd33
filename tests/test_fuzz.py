"""The fuzzer in CI: a few thousand seeded mutants of every spec in specs/ and tests/specs
(bench/fuzz.py makes them; `python bench/fuzz.py --cases 10000` runs more). Each must end
in a SpecError or UsageError with located problems, or in a Report — never another
exception — and `check --json` must print one strict JSON document."""
from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import fuzz  # noqa: E402

CASES = 2500


def test_mutants_end_in_located_errors_or_a_report(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNBUILD_DEBUG", "1")   # a crash escapes main() instead of becoming an "internal error" line
    counts, crashes, _ = fuzz.run(seed=10, cases=CASES, folder=tmp_path, json_every=4)
    if crashes:
        case, origin, raw, trace = crashes[0]
        raise AssertionError(f"{len(crashes)} of {CASES} mutants crashed; the first, case {case} from {origin.name}:\n"
                             f"{raw[:1500]!r}\n{trace}")
    # the mutations reach every outcome: refused by the reader or the parser, invalid shapes, still valid
    assert counts["refused"] > CASES // 4 and counts["invalid"] > 0 and counts["valid"] > 0, counts


def test_every_seed_spec_is_fuzzed():
    # the zoo, the good and bad fixtures and the drawing fixtures
    folders = {path.parent.name for path in fuzz.SEEDS}
    assert {"specs", "good", "bad", "draw"} <= folders and len(fuzz.SEEDS) >= 40

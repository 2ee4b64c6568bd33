"""`cnnbuild scale SPEC --max-macs X [--max-params Y] [--max-memory Z] [--out FILE]`:
EfficientNet's compound scaling (Tan & Le 2019, seed 001) of a spec's `depth`, `width` and
`resolution` parameters to fit a budget.

For a coefficient φ the spec is checked with depth·α^φ, width·β^φ and resolution·γ^φ
(α, β, γ = 1.2, 1.1, 1.15, as the paper; overridable), the resolution rounded to a multiple
of the base resolution's power-of-two factor (up to 32: 224 → multiples of 32), so that the
scaled image still divides by the network's strides. The cost grows with φ, so the largest φ that fits is found by doubling
then bisecting — static checks alone, no TensorFlow, a few dozen checks in all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import UsageError
from .candidates import Budget, figures_of

PAPER = (1.2, 1.1, 1.15)          # α (depth), β (width), γ (resolution): EfficientNet's grid search
SCALED = ("depth", "width", "resolution")
STEPS = 12                        # bisection steps: φ to within 2⁻¹² of its doubling bracket
MAX_PHI = 64.0


@dataclass
class Candidate:
    phi: float
    values: dict
    figures: object
    over: list = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.figures is not None and self.figures.valid and not self.over


@dataclass
class Scaled:
    base: dict
    tried: list
    chosen: Optional[Candidate]
    budget: Budget
    written: str = ""


def scaled_values(base: dict, phi: float, coefficients=PAPER) -> dict:
    """The parameters at φ: depth·α^φ and width·β^φ (floats), resolution·γ^φ rounded to a
    multiple of the base resolution's power-of-two factor (at most 32).

    >>> scaled_values({"depth": 1.0, "width": 1.0, "resolution": 224}, 1.0)
    {'depth': 1.2, 'width': 1.1, 'resolution': 256}
    >>> scaled_values({"depth": 1.0, "width": 1.0, "resolution": 224}, 2.0)["resolution"]   # 224·1.15² = 296.2
    288
    """
    alpha, beta, gamma = coefficients
    resolution = int(base["resolution"])
    step = min(32, resolution & -resolution)
    return {"depth": round(base["depth"] * alpha ** phi, 4), "width": round(base["width"] * beta ** phi, 4),
            "resolution": max(step, int(round(resolution * gamma ** phi / step)) * step)}


def scale(spec_path, budget: Budget, coefficients=PAPER, variant=None, out=None) -> Scaled:
    """The largest φ whose spec fits `budget`, by static checks; writes the spec with those
    values to `out` when given."""
    from .. import families
    if not any((budget.params, budget.macs, budget.activation_bytes)):
        raise UsageError("scale needs a budget to fit", "give --max-macs (and/or --max-params, --max-memory)")
    spec = _load(spec_path, {}, variant)
    base = dict(getattr(spec, "params", {}) or {})
    missing = [name for name in SCALED if not isinstance(base.get(name), (int, float))]
    if missing:
        raise UsageError(f"{spec_path}: compound scaling reads the spec's depth, width and resolution parameters; it has "
                         f"no {', '.join(missing)}",
                         "declare them under params: (e.g. params: {depth: 1.0, width: 1.0, resolution: 224}) and use "
                         "them in the layers (repeat times, filters, input)")
    tried = []

    def judge(phi):
        values = scaled_values(base, phi, coefficients)
        candidate_spec = _load(spec_path, values, variant)
        figures = figures_of(candidate_spec, families.of_spec(candidate_spec).check(candidate_spec, files_only=True))
        candidate = Candidate(phi, values, figures, figures.over_budget + budget.exceeded(figures)
                              if figures.valid else figures.errors[:1])
        tried.append(candidate)
        return candidate

    first = judge(0.0)
    if not first.fits:
        raise UsageError(f"{spec_path}: even the base spec does not fit: {'; '.join(first.over)}",
                         f"raise the budget ({budget.describe()}), or make the base spec smaller")
    low, high = 0.0, 1.0
    while high <= MAX_PHI and judge(high).fits:
        low, high = high, high * 2
    for _ in range(STEPS):
        middle = (low + high) / 2
        if judge(middle).fits:
            low = middle
        else:
            high = middle
    chosen = next(c for c in reversed(tried) if c.fits and c.phi == low)
    result = Scaled(base, sorted(tried, key=lambda c: c.phi), chosen, budget)
    if out is not None:
        result.written = _write(spec_path, chosen.values, variant, out)
    return result


def _load(spec_path, values: dict, variant):
    from .. import families
    from ..parse.overrides import given
    overrides = [given(name, value, "scale") for name, value in values.items()]
    return families.resolve_spec(spec_path, overrides, **({"variant": variant} if variant else {}))


def _write(spec_path, values, variant, out) -> str:
    """The spec with the chosen values written in (its resolved tree: a plain spec), atomically."""
    import yaml

    from .. import runfolder
    spec = _load(spec_path, values, variant)
    runfolder.atomic_write(out, yaml.safe_dump(spec.resolved, sort_keys=False, allow_unicode=True))
    return str(out)


def format_scaled(result: Scaled) -> str:
    from ..check.report import count_text, human_bytes
    lines = [f"{'φ':>8}  {'depth':>7}  {'width':>7}  {'res':>5}  {'params':>13}  {'MACs':>9}  {'activations':>11}  fits"]
    for c in result.tried:
        f = c.figures
        figures = (f"{f.params:>13,}  {count_text(f.macs):>9}  {human_bytes(f.activation_bytes):>11}" if f and f.valid
                   else f"{'—':>13}  {'—':>9}  {'—':>11}")
        lines.append(f"{c.phi:>8.4f}  {c.values['depth']:>7.3f}  {c.values['width']:>7.3f}  {c.values['resolution']:>5}  "
                     f"{figures}  {'yes' if c.fits else 'no: ' + '; '.join(c.over).splitlines()[0]}")
    chosen = result.chosen
    lines.append(f"chosen: φ = {chosen.phi:.4f}: depth {chosen.values['depth']}, width {chosen.values['width']}, "
                 f"resolution {chosen.values['resolution']} ({chosen.figures.params:,} parameters, "
                 f"{count_text(chosen.figures.macs)} MACs) within {result.budget.describe()}"
                 + (f"; written to {result.written}" if result.written else ""))
    return "\n".join(lines)


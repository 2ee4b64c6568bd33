"""A candidate network: a spec's static figures, and the budget it must fit."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Budget:
    """The most a candidate may cost; None: no limit."""

    params: Optional[int] = None
    macs: Optional[int] = None
    activation_bytes: Optional[int] = None

    def exceeded(self, figures) -> list:
        """What `figures` (params, macs, activation_bytes) exceed, in words; [] when it fits."""
        over = []
        for name, limit, unit in (("params", self.params, "parameters"), ("macs", self.macs, "multiply-adds"),
                                  ("activation_bytes", self.activation_bytes, "bytes of activations")):
            value = getattr(figures, name)
            if limit is not None and value is not None and value > limit:
                over.append(f"{value:,} {unit} > {limit:,}")
        return over

    def describe(self) -> str:
        parts = [f"{name} ≤ {limit:,}" for name, limit in (("params", self.params), ("macs", self.macs),
                                                            ("activation memory", self.activation_bytes)) if limit]
        return ", ".join(parts) or "no budget"


@dataclass
class Figures:
    """A candidate's static figures (None where the check could not compute them)."""

    name: str
    params: Optional[int] = None
    macs: Optional[int] = None
    activation_bytes: Optional[int] = None
    receptive_field: Optional[tuple] = None
    errors: list = field(default_factory=list)      # what makes it invalid
    over_budget: list = field(default_factory=list)  # the spec's own `budget:` it exceeds, in words

    @property
    def valid(self) -> bool:
        return not self.errors


def figures_of(spec, checked) -> Figures:
    """The static figures of a checked spec: a one-network spec's own; a spec of several
    networks (a GAN) sums their parameters and multiply-adds."""
    from ..families import of_spec
    networks = of_spec(spec).networks(spec, checked)
    reports = [report for _, _, report in networks]
    # the networks' own problems: a one-network spec's data problems are no matter here
    problems = list(reports[0].errors) if len(reports) == 1 else [e for e in checked.errors if hasattr(e, "where")]
    over = [p.message for p in problems if p.where.path.startswith("budget")]
    errors = [str(p) for p in problems if not p.where.path.startswith("budget")]
    if errors or any(report.output is None for report in reports):
        return Figures(spec.name, errors=errors or ["the check computed no output"])
    last = [row for row in reports[0].rows if row.depth == 0][-1]
    return Figures(spec.name, sum(r.params for r in reports), sum(r.macs for r in reports),
                   max(r.activation_bytes for r in reports), tuple(last.receptive_field), over_budget=over)

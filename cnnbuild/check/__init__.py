"""Stage 2, Spec → Report: every layer's shape, parameters, multiply-adds and receptive field,
with TensorFlow never imported. A GanSpec gives a GanReport (gan.py): both networks' Reports
and the checks of the pair."""
from ..parse.gan import GanSpec
from .gan import GanReport, format_gan_table, infer_gan  # noqa: F401
from .report import Report, format_table, infer as infer_spec  # noqa: F401


def infer(spec):
    """Spec → Report; GanSpec → GanReport (so callers may dispatch on the result's type)."""
    return infer_gan(spec) if isinstance(spec, GanSpec) else infer_spec(spec)

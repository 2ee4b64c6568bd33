"""Stage 2, Spec → Report: every layer's shape, parameters, multiply-adds and receptive field,
with TensorFlow never imported."""
from .report import Report, format_table, infer  # noqa: F401

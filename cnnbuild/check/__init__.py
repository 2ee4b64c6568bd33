"""Stage 2, Spec → Report: every layer's shape, parameters, multiply-adds and receptive field,
with TensorFlow never imported. A family with several networks checks each as a Spec here,
then the networks together (cnnbuild/families/)."""
from .report import Report, format_table, infer  # noqa: F401

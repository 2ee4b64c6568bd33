"""Stage 3, Spec → keras.Model: the functional model, layer for layer as the report says."""
from .model import build_model, differences, ends_in_probabilities, keras_summary, layers_between  # noqa: F401

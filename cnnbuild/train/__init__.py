"""Stage 4, Spec + data → run folder: data sources, the tf.data pipeline, the strategy, the loop
and its checkpoints."""
from .run import train  # noqa: F401

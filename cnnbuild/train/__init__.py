"""Stage 4, a checked spec + data → run folder: the one training session (session.py) every
family plugs its models and its step into; data sources, the tf.data pipeline, the strategy,
the loops and their checkpoints."""
from .session import Parts, train  # noqa: F401

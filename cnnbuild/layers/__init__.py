"""Every layer kind, registered by name. Importing this package registers them all."""
from . import backbone, composite, conv, core, merge, pool  # noqa: F401  (registration)
from .base import REGISTRY, Kind, Layer, Out, Tensor, register  # noqa: F401

"""A GAN spec: a generator G(z) and a discriminator D(x) trained as a pair (seed 004).

A GAN spec is a spec file whose top level has `generator:` and `discriminator:` (each an
inline spec or a path to one) and a `gan:` section. `GanSpec` is what the later stages read:
the two networks as ordinary `Spec`s whose `input` is already what the built Keras body
receives, so `check.infer` on each gives exactly the built model's shapes and counts.

Conditioning (`gan.conditional: true`, the seeds' D(x|y), G(z|y)) follows Keras's
conditional-GAN example: the label y (0 … K−1) is one-hot encoded and joined to the noise,
G's body reads z‖y of length noise + K; D's body reads the image with K constant channels
joined, H×W×(C + K).

    name: dcgan_digits
    gan: {noise: 64, conditional: true}
    generator:                 # input: filled in as [noise (+ K)]
      layers: [...]
    discriminator:             # input: the image, [H, W, C]; its last layer gives one score
      input: [16, 16, 1]
      layers: [...]
    data: {source: digits}
    train: {epochs: 30, batch_size: 64}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from ..errors import Where
from ..fields import PositiveInt, Range
from .parser import Spec
from .sections import Data, Optimizer, Train

# DCGAN's optimizer (Radford et al. 2016): Adam, learning rate 2e-4, beta_1 0.5.
DCGAN_OPTIMIZER = Optimizer(name="adam", learning_rate=2e-4, beta_1=0.5)


@dataclass(frozen=True)
class Gan:
    """The `gan:` section of a GAN spec.

    Attributes:
      noise: the length of the noise vector z, drawn from a standard normal (default 100, as DCGAN).
      conditional: join the class label y to G's noise and to D's input, as the seeds'
        G(z|y) and D(x|y) (default false).
      classes: how many labels y takes (default: the data's class count).
      loss: non_saturating (default: G maximises log D(G(z)), the variant that trains),
        minimax (G minimises log(1 − D(G(z))), the seeds' objective as written), hinge.
      discriminator_steps: the seeds' k: discriminator updates before each generator update (default 1).
      generator_optimizer: G's optimizer (default adam, learning rate 2e-4, beta_1 0.5, as DCGAN).
      discriminator_optimizer: D's optimizer (default as G's).
      samples_per_class: columns of the per-epoch sample grid (default 8); it has one row per
        class when conditional, else 8 rows.
    """

    noise: Annotated[int, Range(1, 100_000)] = 100
    conditional: bool = False
    classes: Optional[PositiveInt] = None
    loss: Literal["non_saturating", "minimax", "hinge"] = "non_saturating"
    discriminator_steps: Annotated[int, Range(1, 100)] = 1
    generator_optimizer: Optimizer = DCGAN_OPTIMIZER
    discriminator_optimizer: Optimizer = DCGAN_OPTIMIZER
    samples_per_class: Annotated[int, Range(1, 64)] = 8


@dataclass(frozen=True)
class GanSpec:
    """A parsed GAN spec.

    generator.input is (noise + K,) when conditional, else (noise,); discriminator.input is
    (H, W, C + K) when conditional, else image_shape. `classes` is K (0 when unconditional
    and the data's classes are not needed)."""

    name: str
    generator: Spec
    discriminator: Spec
    image_shape: tuple          # (H, W, C): what G makes, what D judges, what the data is read at
    gan: Gan = Gan()
    classes: int = 0
    file: str = "<spec>"
    description: str = ""
    resolved: dict = field(default_factory=dict, compare=False)   # the YAML as parsed, overrides applied
    where: Where = Where("<spec>", 1, 1)
    data: Data = Data()
    augment: tuple = ()
    train: Train = Train()

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def spec_text(tmp_path):
    """Write spec text to a file and return its path."""
    def write(text, name="spec.yaml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


# A tiny conditional DCGAN on the digits at their own 8×8: two epochs train in seconds.
TINY_GAN = """\
name: tiny_gan
gan: {noise: 16, conditional: true, samples_per_class: 4}
generator:
  layers:
    - dense: {units: 256, batchnorm: true, activation: relu}
    - reshape: [4, 4, 16]
    - conv_transpose: {filters: 1, kernel: 4, stride: 2, padding: same, activation: tanh}
discriminator:
  input: [8, 8, 1]
  layers:
    - conv: {filters: 16, kernel: 3, stride: 2, padding: same}
    - leaky_relu: 0.2
    - flatten
    - dense: 1
data: {source: digits}
train: {epochs: 2, batch_size: 64}
"""


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory):
    """A finished tiny conditional GAN run on the digits (TINY_GAN, 2 epochs): its run folder
    (gan.json, generator.keras, discriminator.keras, samples/, history.csv, metrics.json)."""
    import io

    from cnnbuild import resolve_spec
    from cnnbuild import train_spec
    folder = tmp_path_factory.mktemp("gan_run")
    spec = folder / "tiny_gan.yaml"
    spec.write_text(TINY_GAN, encoding="utf-8")
    train_spec(resolve_spec(spec), out=folder / "run", stdout=io.StringIO())
    return folder / "run"

"""The GAN family (seed 004): a generator G(z) and a discriminator D(x) trained as a pair,
optionally conditioned on the class (the seeds' G(z|y), D(x|y)). A spec whose top level
names a `generator:` or a `discriminator:` is a GAN's.

    spec.py       the `gan:` section and the GanSpec: both networks as ordinary Specs
    check.py      both networks checked, then the pair (shapes, one score, pixel range, classes)
    models.py     the two Keras models around the two spec bodies
    training.py   the seeds' k-step algorithm, the losses, the sample grid, failure warnings
    sample.py     `cnnbuild sample`: pictures from a run or its export
    export.py     the generator as a verified SavedModel
    evaluate.py   the samples classified by a separately trained classifier
    schema.py     the JSON Schema of a GAN spec
"""
from __future__ import annotations

from pathlib import Path

from ..base import Evaluated, Family
from .spec import GanSpec

def parse(root, resolved=None, problems=()):
    from .spec import gan_from_node
    return gan_from_node(root, resolved=resolved, problems=problems)


def check(spec, files_only: bool = True):
    from .check import infer_gan
    return infer_gan(spec)


def networks(spec, checked) -> list:
    return [("generator", spec.generator, checked.generator), ("discriminator", spec.discriminator, checked.discriminator)]


def with_budget(spec, max_params=None, max_memory=None):
    import dataclasses

    from ...parse import with_budget as applied
    return dataclasses.replace(spec, generator=applied(spec.generator, max_params, max_memory),
                               discriminator=applied(spec.discriminator, max_params, max_memory))


def train(spec, checked, out=None, stdout=None) -> dict:
    from .training import train_gan
    return train_gan(spec, checked, out=out, stdout=stdout)


def owns_run(folder) -> bool:
    """A GAN run folder or its export: both hold gan.json."""
    from .sample import GAN_INFO
    return (Path(folder) / GAN_INFO).is_file()


def export(run, out=None, format="savedmodel") -> list:
    import time

    from .export import describe, export_generator
    start = time.perf_counter()
    manifest = export_generator(run, out, format)
    return [describe(run, manifest, time.perf_counter() - start)]


def evaluate(run, options) -> Evaluated:
    """The run's samples classified by `options["classifier"]`."""
    from ... import runfolder
    from ...errors import UsageError
    from ...serve.evaluate import draw_confusion
    from .evaluate import SAMPLE_FIGURES, evaluate_gan, format_gan_result
    if not options.get("classifier"):
        raise UsageError(f"{run}: a GAN run; score its samples with a classifier trained on the same data: "
                         f"cnnbuild evaluate {run} --classifier runs/lenet5")
    if options.get("data"):
        raise UsageError("--data: a GAN run is evaluated on its own samples; leave out --data")
    result = evaluate_gan(run, options["classifier"], options.get("n", 1000), options.get("seed", 0),
                          trusted=bool(options.get("trusted")))
    png = Path(options["out"]) if options.get("out") else Path(run) / SAMPLE_FIGURES
    runfolder.write_json(png.with_suffix(".json"), result.to_json())
    drawn = result.asked is not None and len(result.asked.classes) == len(result.classes)
    if drawn:                  # the asked-for × classified-as matrix, square when the classes match
        draw_confusion(result.asked, png)
    return Evaluated(result.to_json() | ({"png": str(png)} if drawn else {}),
                     f"{format_gan_result(result)}\n"
                     f"{f'asked for × classified as: {png}; ' if drawn else ''}figures: {png.with_suffix('.json')}")


def sample(run, count=64, class_name=None, seed=0, out=None, trusted=False) -> dict:
    from .sample import sample_run
    return sample_run(run, count, class_name, seed, out, trusted=trusted)


def schema(generator, spec_schema) -> dict:
    from .schema import gan_spec_schema
    return gan_spec_schema(generator, spec_schema)


FAMILY = Family(name="gan", title="GAN", description="a GAN spec: a generator and a discriminator trained as a pair",
                marks=("generator", "discriminator"), spec_type=GanSpec, parse=parse, check=check, networks=networks,
                with_budget=with_budget, train=train, owns_run=owns_run, export=export, evaluate=evaluate,
                sample=sample, optimizers=(("gan", "generator_optimizer"), ("gan", "discriminator_optimizer")),
                spec_files=(("generator",), ("discriminator",)), schema=schema,
                verbs_hint="sample it with cnnbuild sample, export its generator with cnnbuild export, or score its "
                           "samples with cnnbuild evaluate RUN --classifier CLASSIFIER_RUN")

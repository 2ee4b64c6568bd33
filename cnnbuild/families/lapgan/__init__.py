"""The LAPGAN family (seed 004; Denton et al. 2015): a Laplacian pyramid of conditional GANs.
A spec whose top level names `levels:` is a LAPGAN's.

    spec.py       the spec: the image, the pyramid's levels (each a generator and a discriminator)
    check.py      every level's networks checked, then against the pyramid
    models.py     the level bodies and the whole sampler (one Keras model)
    training.py   every level's GAN on the Laplacian residuals, in the one training session

A run's generator.keras is the whole sampler and its gan.json describes it as a GAN's, so
sampling, export (one verified SavedModel) and `evaluate --classifier` are the GAN family's
own (families/gan/): nothing of theirs is copied here.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import gan
from ..base import Family
from .spec import LapganSpec


def parse(root, resolved=None, problems=()):
    from .spec import lapgan_from_node
    return lapgan_from_node(root, resolved=resolved, problems=problems)


def check(spec, files_only: bool = True):
    from .check import infer_lapgan
    return infer_lapgan(spec)


def networks(spec, checked) -> list:
    return list(checked.networks)


def with_budget(spec, max_params=None, max_memory=None):
    from ...parse import with_budget as applied
    levels = tuple(dataclasses.replace(level, generator=applied(level.generator, max_params, max_memory),
                                       discriminator=applied(level.discriminator, max_params, max_memory))
                   for level in spec.levels)
    return dataclasses.replace(spec, levels=levels)


def train(spec, checked, out=None, stdout=None) -> dict:
    from .training import train_lapgan
    return train_lapgan(spec, checked, out=out, stdout=stdout)


def owns_run(folder) -> bool:
    from .training import LAPGAN_JSON
    return (Path(folder) / LAPGAN_JSON).is_file()


FAMILY = Family(name="lapgan", title="LAPGAN", description="a LAPGAN spec: a Laplacian pyramid of conditional GANs",
                marks=("levels",), spec_type=LapganSpec, parse=parse, check=check, networks=networks,
                with_budget=with_budget, train=train, owns_run=owns_run, export=gan.export, evaluate=gan.evaluate,
                sample=gan.sample, optimizers=(("gan", "generator_optimizer"), ("gan", "discriminator_optimizer")),
                verbs_hint=gan.FAMILY.verbs_hint)


def schema(generator, spec_schema) -> dict:
    """A LAPGAN spec's JSON Schema: the GAN's `gan:` section and network definitions (each
    level's networks as the GAN discriminator's: inline or a path; their input is filled in)."""
    from ..gan.schema import gan_spec_schema
    from .spec import TOP_KEYS
    gan_schema = gan_spec_schema(generator, spec_schema)
    top, properties = spec_schema["properties"], gan_schema["properties"]

    def levels(network):
        level = {"type": "object", "properties": {"generator": network, "discriminator": network},
                 "required": ["generator", "discriminator"], "additionalProperties": False}
        return {"levels": {"type": "array", "items": level, "minItems": 2,
                           "description": "the pyramid's levels, finest first; the last is an ordinary (c)GAN"}}
    keys = {"name": properties["name"], "description": top["description"], "input": top["input"],
            "gan": properties["gan"], "blocks": top["blocks"], "data": top["data"], "augment": top["augment"],
            "train": properties["train"], "levels": {}}
    return {"type": "object", "description": "A LAPGAN spec: a Laplacian pyramid of conditional GANs.",
            "properties": {key: keys[key] for key in TOP_KEYS}, "required": ["input", "levels"],
            "additionalProperties": False, "if": {"required": ["blocks"]},
            "then": {"properties": levels(gan_schema["then"]["properties"]["discriminator"])},
            "else": {"properties": levels(gan_schema["else"]["properties"]["discriminator"])}}


FAMILY = dataclasses.replace(FAMILY, schema=schema)

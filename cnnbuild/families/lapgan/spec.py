"""A LAPGAN spec (seed 004; Denton et al. 2015): a Laplacian pyramid of conditional GANs.

The image I_0 is taken down a Gaussian pyramid, I_k = d(I_{k−1}) (d: 2×2 average pooling),
and each level but the coarsest keeps the detail the next one loses, the Laplacian residual
h_k = I_k − u(I_{k+1}) (u: ×2 nearest-neighbour upsampling). Level k's generator G_k makes
h_k from noise, conditioned on the upsampled coarser image u(I_{k+1}) (and the class, when
conditional); its discriminator D_k judges (h_k, u(I_{k+1})) pairs. The coarsest level K is
an ordinary (c)GAN on I_K. Sampling runs from the coarsest level up:
Ĩ_K = G_K(z_K), Ĩ_k = u(Ĩ_{k+1}) + G_k(z_k, u(Ĩ_{k+1})).

    name: lapgan_digits
    input: [8, 8, 1]              # I_0, the image the data is read at
    gan: {noise: 32, conditional: true}    # the coarsest level's noise; loss, k, optimizers: as a GAN's
    levels:                       # finest (k = 0) first; level k is (H / 2^k) × (W / 2^k)
      - generator: {layers: [...]}         # reads u(I_1) ‖ a noise plane ‖ K label planes → h_0
        discriminator: {layers: [...]}     # reads h_0 ‖ u(I_1) ‖ K label planes → one score
      - generator: {layers: [...]}         # the coarsest: reads z ‖ one-hot y → I_K
        discriminator: {layers: [...]}     # reads I_K ‖ K label planes → one score

Every network's `input:` is filled in (a written one must agree); each is inline or the path
of a spec file, as a GAN's networks are (families/gan/spec.py, whose parts this reuses).
"""
from __future__ import annotations

from typing import Optional

from dataclasses import dataclass, field

from ...errors import Invalid, Problem, SpecError, Where
from ...parse.parser import Spec, _input as image_input
from ...parse.sections import Data, Train, parse_sections
from ...parse.source import Node
from ...parse.blocks import parse_blocks
from ...parse.values import MAX_UNKNOWN, coerce, did_you_mean
from ..gan.spec import (ROLES, Gan, _classes, _description, _gan_section, _gan_train, _name, _network_root,
                        _parse_network)

TOP_KEYS = ("name", "description", "input", "gan", "levels", "blocks", "data", "augment", "train")
MAX_LEVELS = 8


@dataclass(frozen=True)
class Level:
    """Level k of the pyramid: its size (H_k, W_k) and its two networks as ordinary Specs."""

    size: tuple
    generator: Spec
    discriminator: Spec


@dataclass(frozen=True)
class LapganSpec:
    """A parsed LAPGAN spec: `levels` finest first; `classes` K (0 when unconditional)."""

    name: str
    levels: tuple
    image_shape: tuple
    gan: Gan = Gan()
    classes: int = 0
    file: str = "<spec>"
    description: str = ""
    resolved: dict = field(default_factory=dict, compare=False)
    where: Where = Where("<spec>", 1, 1)
    data: Data = Data()
    augment: tuple = ()
    train: Train = Train()
    places: dict = field(default_factory=dict, compare=False)
    params: tuple = ()           # (name, value) pairs: the top-level parameters' values (parse/params.py)
    variant: Optional[str] = None

    def place(self, path: str) -> Where:
        return self.places.get(path) or self.where.at(path)

    @property
    def noise_length(self) -> int:
        """The sampler's one noise vector: the coarsest level's z, then one H_k×W_k plane per finer level."""
        return self.gan.noise + sum(h * w for h, w in (level.size for level in self.levels[:-1]))


def pyramid(image_shape, count: int) -> list:
    """The levels' sizes, finest first, halving each time: None where a side is not a whole
    number of pixels (the check says which).

    >>> pyramid((8, 8, 1), 3)
    [(8, 8), (4, 4), (2, 2)]
    >>> pyramid((12, 12, 1), 3)
    [(12, 12), (6, 6), (3, 3)]
    """
    height, width = image_shape[:2]
    sizes = []
    for k in range(count):
        scale = 2 ** k
        sizes.append((height // scale, width // scale) if height % scale == 0 and width % scale == 0 else None)
    return sizes


def network_inputs(size, channels: int, gan: Gan, classes: int, coarsest: bool) -> dict:
    """What each network of a level reads (see the module's docstring)."""
    h, w = size
    if coarsest:
        return {"generator": (gan.noise + classes,), "discriminator": (h, w, channels + classes)}
    return {"generator": (h, w, channels + 1 + classes), "discriminator": (h, w, 2 * channels + classes)}


def lapgan_from_node(root: Node, resolved: dict | None = None, problems=()) -> LapganSpec:
    """A LAPGAN spec's Node tree → a LapganSpec, or SpecError with every problem found."""
    problems: list[Problem] = list(problems)
    top = root.value
    places = {key: root.key_where(key) for key in top}
    for key in [k for k in top if k not in TOP_KEYS][:MAX_UNKNOWN]:
        hint = did_you_mean(key, TOP_KEYS)
        if key in ROLES or key == "layers":
            hint = f"a LAPGAN's networks are per level: move '{key}' under levels: [{{generator: …, discriminator: …}}]"
        problems.append(Problem(root.key_where(key), f"unknown top-level key '{key}' in a LAPGAN spec", hint))
    name = _name(top, "lapgan", problems)
    gan = _gan_section(top.get("gan"), problems, places)
    image_shape = image_input(top.get("input"), root, problems)
    levels_node = top.get("levels")
    if levels_node is None or not levels_node.is_list or not levels_node.value:
        problems.append(Problem(levels_node.where if levels_node is not None else root.where,
                                "'levels' must list the pyramid's levels, finest first, each {generator, discriminator}",
                                "e.g. levels: [{generator: {layers: […]}, discriminator: {layers: […]}}, …] (two levels "
                                "or more: the coarsest is an ordinary GAN)"))
        raise SpecError(problems)
    entries = levels_node.value
    if len(entries) > MAX_LEVELS:
        problems.append(Problem(levels_node.where, f"{len(entries)} levels; at most {MAX_LEVELS}", "use fewer levels"))
        raise SpecError(problems)
    sizes = pyramid(image_shape, len(entries))
    if None in sizes:
        k = sizes.index(None)
        height, width = image_shape[:2]
        fits = max(j for j in range(len(entries)) if sizes[j] is not None) + 1
        problems.append(Problem(places.get("input", root.where),
                                f"the pyramid's level {k} would be {height}/2^{k} × {width}/2^{k} = "
                                f"{height / 2 ** k:g} × {width / 2 ** k:g}: not whole pixels (each level halves the "
                                f"one before, I_k = d(I_(k−1)))",
                                f"use {fits} level{'s' if fits != 1 else ''}, or an input whose sides divide by "
                                f"{2 ** (len(entries) - 1)} (e.g. {[_round_up(side, 2 ** (len(entries) - 1)) for side in (height, width)] + [image_shape[2]]})"))
    sections = {key: top[key] for key in ("data", "augment") if key in top}
    if "train" in top:
        sections["train"] = _gan_train(top["train"], problems)
    data, augment, train = parse_sections(sections, image_shape, problems)
    written = gan is not None
    classes = _classes(gan, data, root, places, problems) if written else 0
    gan = gan or Gan()
    joined = classes if gan.conditional else 0
    shared = top.get("blocks")
    parse_blocks(shared, problems)
    levels = []
    for k, entry in enumerate(entries):
        level = _level(k, entry, root, sizes[k], len(entries), image_shape[2], gan, joined, shared, problems, places)
        if level is not None:
            levels.append(level)
    problems = list(dict.fromkeys(problems))
    if problems or len(levels) < len(entries):
        raise SpecError(problems)
    if len(levels) < 2:
        raise SpecError([Problem(levels_node.where, "a LAPGAN needs two levels or more (one level is a GAN)",
                                 "add a coarser level, or write a GAN spec (generator: and discriminator: at the top)")])
    return LapganSpec(name=name, levels=tuple(levels), image_shape=tuple(image_shape), gan=gan, classes=joined,
                      file=root.where.file, description=_description(top), resolved=resolved or {}, where=root.where,
                      data=data, augment=augment, train=train, places=places)


def _round_up(side: int, multiple: int) -> int:
    return -(-side // multiple) * multiple


def _level(k, entry, root, size, count, channels, gan, classes, shared, problems, places):
    """Level k's two networks, their inputs filled in; None after a problem."""
    if not entry.is_map:
        problems.append(Problem(entry.where, f"levels[{k}] must be a mapping {{generator: …, discriminator: …}}",
                                "give each level its generator and discriminator (inline, or spec file paths)"))
        return None
    for key in [key for key in entry.value if key not in ROLES]:
        problems.append(Problem(entry.key_where(key), f"unknown key '{key}' in levels[{k}]", did_you_mean(key, ROLES)))
    if size is None:
        return None
    inputs = network_inputs(size, channels, gan, classes, coarsest=k == count - 1)
    specs = {}
    for role in ROLES:
        node = entry.value.get(role)
        if node is None:
            problems.append(Problem(entry.where, f"levels[{k}] has no '{role}:'", f"add '{role}:' with its layers, or the "
                                    f"path of a spec file"))
            continue
        network = _network_root(f"levels[{k}].{role}", node, root, problems, places)
        if network is None:
            continue
        written = network.value.get("input")
        if written is not None:
            try:
                same = tuple(coerce(written, tuple[int, ...])) == inputs[role]
            except Invalid:
                same = False
            if not same:
                problems.append(Problem(written.where, f"levels[{k}].{role} reads {list(inputs[role])} "
                                        f"({_reads(k, count, role, size, channels, gan, classes)}), but its input says "
                                        f"{written.plain()}", "remove 'input:' (it is filled in)"))
                continue
        spec = _parse_network(f"level{k}_{role}", network, inputs[role], shared if node.is_map else None, problems)
        if spec is not None:
            specs[role] = spec
    return Level(size, specs["generator"], specs["discriminator"]) if len(specs) == 2 else None


def _reads(k, count, role, size, channels, gan, classes) -> str:
    label = f" ‖ {classes} label planes" if classes else ""
    if k == count - 1:
        return (f"noise {gan.noise}" + (f" ‖ one-hot label {classes}" if classes else "") if role == "generator"
                else f"I_{k} {size[0]}×{size[1]}×{channels}{label}")
    if role == "generator":
        return f"u(I_{k + 1}) {size[0]}×{size[1]}×{channels} ‖ a noise plane{label}"
    return f"h_{k} ‖ u(I_{k + 1}), {size[0]}×{size[1]}×{channels} each{label}"

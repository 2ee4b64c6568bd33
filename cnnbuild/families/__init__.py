"""The families table: one row per kind of network (classifier, GAN, …), each saying how its
specs are parsed, checked, built, trained, exported, sampled and evaluated (base.py states
the contract), like Ultralytics' `task_map`. The command line and the Python API ask this
table; nothing else asks "is this a GAN?".

    of_tree(root)        the family whose spec a YAML tree is (the first row that recognises it)
    of_spec(spec)        the family of a parsed spec
    of_run(folder)       the family of a run or export folder
    load_spec(path)      a spec file of any family → its spec; parse_spec(text), resolve_spec(path)

Importing the table imports no TensorFlow: the rows import their stages when called.
"""
from __future__ import annotations

from ..errors import UsageError
from .base import Evaluated, Family  # noqa: F401
from . import classifier, gan, lapgan

# Asked in order: the first that recognises a tree or owns a run folder is its family; the
# classifier, last, recognises everything (a spec without another family's keys).
FAMILIES: tuple = (lapgan.FAMILY, gan.FAMILY, classifier.FAMILY)
DEFAULT = classifier.FAMILY


def of_tree(root) -> Family:
    """The first family whose marking keys the tree's top level holds (the default has none)."""
    keys = root.value if root.is_map else {}
    return next(family for family in FAMILIES if not family.marks or any(key in keys for key in family.marks))


def of_spec(spec) -> Family:
    family = next((family for family in FAMILIES if isinstance(spec, family.spec_type)), None)
    if family is None:
        raise UsageError(f"{type(spec).__name__}: not a spec of any network family; load one with cnnbuild.load_spec")
    return family


def of_run(folder) -> Family:
    return next((family for family in FAMILIES if family.owns_run(folder)), DEFAULT)


def for_verb(verb: str, folder) -> Family:
    """The family that answers `cnnbuild VERB FOLDER` (sample, predict): the folder's own when
    it has the verb; when no family but the default claims the folder, the one family that has
    the verb (which says itself what the folder is not); else a refusal saying what to do."""
    having = [family for family in FAMILIES if getattr(family, verb) is not None]
    owner = next((family for family in FAMILIES if family is not DEFAULT and family.owns_run(folder)), None)
    if owner is None:
        # one answer when every family with the verb answers it alike (a LAPGAN samples as a GAN)
        return having[0] if len({getattr(family, verb) for family in having}) == 1 else DEFAULT
    if getattr(owner, verb) is None:
        raise UsageError(f"{folder}: a {owner.title} run or export, not a {' or '.join(f.title for f in having)} run; "
                         f"{owner.verbs_hint}")
    return owner


def checked_for_training(spec) -> tuple:
    """(family, its check of `spec`) with the data's files looked at, as training needs them;
    its errors (the spec's and its data's, each located) raised as SpecError. No TensorFlow."""
    from ..errors import SpecError
    family = of_spec(spec)
    checked = family.check(spec, files_only=False)
    if not checked.valid:
        raise SpecError(checked.errors)
    return family, checked


def _parse(root, overrides, keep=False, variant=None):
    """The family's spec of a tree; its `search:` section (cnnbuild tune's) checked and set
    aside first, so every family reads the spec it describes (parse/search.py)."""
    from ..parse import parse_tree
    _search_of(root)
    family = of_tree(root)
    return parse_tree(root, overrides, family.parse, keep, variant)


def _search_of(root) -> tuple:
    """The tree's `search:` section as Dimensions, taken off the tree; SpecError when it is wrong."""
    from ..errors import SpecError
    from ..parse.search import parse_search
    if not root.is_map or "search" not in root.value:
        return ()
    problems = []
    dimensions = parse_search(root.value.pop("search"), problems)
    if problems:
        raise SpecError(problems)
    return dimensions


def search_space(path) -> tuple:
    """The `search:` section of a spec file (cnnbuild tune): its Dimensions, () when it has none."""
    from ..parse import read_tree
    return _search_of(read_tree(path))


def load_spec(path, overrides=(), variant=None):
    """A spec file of any family → its spec (validated), or SpecError with every problem.
    `variant`: one of its `variants:` (parameter values), by name."""
    from ..parse import read_tree
    return _parse(read_tree(path), overrides, variant=variant)


def parse_spec(text: str, name: str = "<spec>", overrides=(), variant=None):
    from ..parse import text_tree
    return _parse(text_tree(text, name), overrides, variant=variant)


def resolve_spec(path, overrides=(), variant=None):
    """The spec as a run trains it: shorthands written out, file references absolute (parse/load.py)."""
    from ..parse import read_tree, resolved_tree
    family = of_tree(read_tree(path))
    root, overrides = resolved_tree(path, overrides, family.optimizers, family.spec_files)
    return _parse(root, overrides, keep=True, variant=variant)


def spec_schema() -> dict:
    """The JSON Schema of a spec file of any family (views/schema.py, with each family's part)."""
    from ..views.schema import spec_schema as schema
    return schema([(family.name, family.description, family.marks, family.schema)
                   for family in FAMILIES if family.schema is not None])

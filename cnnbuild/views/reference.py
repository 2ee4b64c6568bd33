"""The reference pages of the docs site, generated — never copied by hand — from what the
code itself declares: every layer kind from the registry, every section field from the JSON
Schema (itself generated from the dataclasses the checker reads, views/schema.py), every
command and option from the command line's argparse parser.

The pages are Markdown for MkDocs (docs/hooks.py hands them to the build, so a new kind, field
or option is documented the moment it exists); tests/test_docs.py checks that each kind, each
field and each option has its entry. This module receives the schema document and the parser
rather than importing the families table or cli.py, which come later in the pipeline.
"""
from __future__ import annotations

import argparse

from ..layers import REGISTRY

SECTION_PAGES = {   # definition in the schema → its heading on the spec-fields page
    "Data": "data:", "Source": "data: validation:", "Train": "train:", "Optimizer": "train: optimizer:",
    "Schedule": "train: schedule:", "EarlyStopping": "train: early_stopping:", "Budget": "budget:",
}


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def type_text(schema: dict) -> str:
    """A JSON Schema fragment as a few words: `integer ≥ 1`, `one of valid, same`, `list of layers`.

    >>> type_text({"type": "integer", "minimum": 1})
    'integer ≥ 1'
    >>> type_text({"anyOf": [{"enum": ["valid", "same"]}, {"type": "integer", "minimum": 0}]})
    '`valid`, `same` or integer ≥ 0'
    >>> type_text({"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3})
    'list of 3: number'
    >>> pair = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}
    >>> type_text({"type": "array", "items": pair, "minItems": 2, "maxItems": 2})
    'pair of pairs of integer ≥ 0'
    """
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name == "expression":
            return ""
        if name.startswith(("layers", "layer")):
            return "list of layers"
        if name.startswith("common_"):
            return name[len("common_"):]
        return f"a mapping ([{name}](#{name.lower()}))" if name in SECTION_PAGES else f"a mapping ({name})"
    if "anyOf" in schema:
        parts = [type_text(option) for option in schema["anyOf"]]
        parts = [p for i, p in enumerate(parts) if p and p not in parts[:i]]
        return " or ".join(parts)
    if "enum" in schema:
        return ", ".join(f"`{choice}`" for choice in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type")
    if kind in ("integer", "number"):
        bounds = []
        for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
            if key in schema:
                bounds.append(f"{sign} {schema[key]}")
        return " ".join([kind, ", ".join(bounds)]).strip()
    if kind == "array":
        items = schema.get("items", {})
        if isinstance(items, list):
            return "[" + ", ".join(type_text(item) or "value" for item in items) + "]"
        what = type_text(items) or "values"
        if schema.get("minItems") == schema.get("maxItems") == 2:
            return "pair of pairs of " + what[len("pair of "):] if what.startswith("pair of ") else f"pair of {what}"
        if schema.get("minItems") and schema.get("minItems") == schema.get("maxItems"):
            return f"list of {schema['minItems']}: {what}"
        return what if what == "list of layers" else f"list of {what}"
    if kind == "null":
        return "nothing"
    if kind in ("boolean", "string", "object"):
        return {"boolean": "true or false", "string": "text", "object": "a mapping"}[kind]
    return "any value" if "description" in schema else ""


def _default_text(schema: dict) -> str:
    if "default" not in schema:
        return ""
    value = schema["default"]
    return "`null`" if value is None else f"`{str(value).lower() if isinstance(value, bool) else value}`"


def fields_table(properties: dict, heading: str = "field") -> list[str]:
    """A Markdown table of a schema object's properties: name, what it takes, default, help."""
    if not properties:
        return ["No arguments."]
    lines = [f"| {heading} | takes | default | what it means |", "|---|---|---|---|"]
    for name, schema in properties.items():
        lines.append(f"| `{name}` | {cell(type_text(schema))} | {cell(_default_text(schema))} | "
                     f"{cell(schema.get('description', ''))} |")
    return lines


def _resolved(schema: dict, definitions: dict) -> dict:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _arguments(entry: dict, definitions: dict) -> dict:
    """The arguments mapping among a kind entry's options (mapping / nothing / main value)."""
    for option in entry.get("anyOf", [entry]):
        option = _resolved(option, definitions)
        if option.get("type") == "object":
            return option
    return {"properties": {}}


def layers_page(schema: dict) -> str:
    """Every layer kind of the registry: what it is, how to write it, its arguments."""
    definitions = schema["definitions"]
    lines = ["# Layer kinds", "",
             "Generated from the layer registry (`cnnbuild/layers/`): each kind's arguments are the fields of its "
             "dataclass, their help its `Attributes:` docstring. A layer is written `- kind: {arguments}`, "
             "`- kind: value` for its main argument, or `- kind` alone when no argument is required. Every layer "
             "also takes the common keys below.", ""]
    common = {key[len("common_"):]: value for key, value in definitions.items() if key.startswith("common_")}
    lines += ["## Keys every layer takes", ""] + fields_table(common, "key") + [""]
    lines += ["## Index", "", " · ".join(f"[`{kind}`](#{kind})" for kind in sorted(REGISTRY)), ""]
    for kind in sorted(REGISTRY):
        cls = REGISTRY[kind]
        entry = definitions[f"kind_{kind}"]
        arguments = _arguments(entry, definitions)
        properties = {k: v for k, v in arguments.get("properties", {}).items()
                      if not ("$ref" in v and v["$ref"].startswith("#/definitions/common_"))}
        lines += [f"## {kind}", "", entry.get("description", "").strip() or kind, ""]
        facts = []
        if cls.main:
            facts.append(f"main argument: `{cls.main}` (`- {kind}: value`)")
        required = arguments.get("required", [])
        if required:
            facts.append("required: " + ", ".join(f"`{name}`" for name in required))
        elif not cls.main:
            facts.append(f"may be written bare: `- {kind}`")
        if cls.merges:
            facts.append("joins layers: takes `with:`")
        names = tuple(cls.keras_names) + tuple(cls.aliases)
        if names:
            facts.append("also understood as: " + ", ".join(f"`{name}`" for name in names))
        if facts:
            lines += ["; ".join(facts) + ".", ""]
        lines += fields_table(properties, "argument") + [""]
    return "\n".join(lines)


def sections_page(schema: dict) -> str:
    """The top-level keys of a spec and every field of its sections (and each family's)."""
    definitions = schema["definitions"]
    spec = definitions["spec"]
    lines = ["# Spec fields", "",
             "Generated from the dataclasses the checker reads (`cnnbuild/parse/sections.py`, "
             "`cnnbuild/parse/parser.py`, each family's spec): the same text `cnnbuild schema` gives an editor.", "",
             "## Top level", ""] + fields_table(spec["properties"], "key") + [""]
    augment = _resolved(spec["properties"]["augment"], definitions)
    lines += ["## augment:", "", augment.get("description", "") + ".", ""]
    items = next(option["items"] for option in augment["anyOf"] if option.get("type") == "array")
    kinds = next(option["properties"] for option in items["anyOf"] if option.get("type") == "object")
    for name, entry in kinds.items():
        arguments = _arguments(entry, definitions)
        lines += [f"### {name}", "", entry.get("description", name), ""]
        lines += fields_table(arguments.get("properties", {}), "argument") + [""]
    for name, heading in SECTION_PAGES.items():
        section = definitions[name]
        lines += [f"## {name}", "", f"`{heading}` {section.get('description', '')}", ""]
        lines += fields_table(section["properties"]) + [""]
    for key, family in definitions.items():   # other families' specs: each its own definition
        if not key.endswith("_spec") or key == "spec":
            continue
        lines += [f"## {key[:-len('_spec')]} specs", "", family.get("description", ""), "",
                  "### Top level", ""] + fields_table(family["properties"], "key") + [""]
        for section, value in family["properties"].items():
            value = _resolved(value, definitions)
            if value.get("type") == "object" and value.get("properties") and section not in spec["properties"]:
                lines += [f"### {section}:", ""] + fields_table(value["properties"]) + [""]
    return "\n".join(lines)


def _actions(parser: argparse.ArgumentParser):
    """(name, help, sub-parser) of a parser's sub-commands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    lines = ["| argument | what it does |", "|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            metavar = action.metavar or (None if action.nargs == 0 else action.dest.upper())
            if isinstance(metavar, tuple):
                metavar = " ".join(metavar)
            name = ", ".join(action.option_strings) + (f" {metavar}" if metavar else "")
        else:
            name = action.metavar or action.dest
        lines.append(f"| `{cell(name)}` | {cell(action.help or '')} |")
    return lines


def cli_page(parser: argparse.ArgumentParser) -> str:
    """Every command, sub-command and option, from the parser `cnnbuild` itself runs."""
    lines = ["# Command line", "", "Generated from `cnnbuild`'s own argument parser (`cnnbuild/cli.py`'s COMMANDS).",
             "", parser.description or "", "", "```", parser.format_usage().strip(), "```", ""]
    for name, help_text, sub in _actions(parser):
        lines += [f"## cnnbuild {name}", "", help_text + ".", "", "```", sub.format_usage().strip(), "```", ""]
        lines += _options_table(sub) + [""]
        for action_name, action_help, action_parser in _actions(sub):
            lines += [f"### cnnbuild {name} {action_name}", "", action_help + ".", "",
                      "```", action_parser.format_usage().strip(), "```", ""]
            lines += _options_table(action_parser) + [""]
    return "\n".join(lines)


def pages(schema: dict, parser: argparse.ArgumentParser) -> dict[str, str]:
    """{path under docs/: Markdown} of every generated page."""
    return {"reference/layers.md": layers_page(schema), "reference/fields.md": sections_page(schema),
            "reference/cli.md": cli_page(parser)}

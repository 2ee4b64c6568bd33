"""The docs site and the quick start: every layer kind, section field and command-line option
has its entry in the generated reference (read from the registry, the dataclasses and the
parser themselves, not from the generator); `mkdocs build --strict` builds the site; the
README keeps CI's two commands first; `cnnbuild init` writes out a shipped example that
checks."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest

from cnnbuild.cli import COMMANDS, main, parser_for
from cnnbuild.families import spec_schema
from cnnbuild.layers import REGISTRY
from cnnbuild.parse import sections
from cnnbuild.parse.parser import TOP_KEYS, Budget
from cnnbuild.views.reference import pages

from conftest import ROOT


@pytest.fixture(scope="module")
def generated():
    return pages(spec_schema(), parser_for([]))


def spec_fields(cls) -> list[str]:
    """The YAML keys a dataclass declares (the parser sets the internal ones)."""
    return [f.name for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")]


def entries(page: str, heading: str) -> set[str]:
    """The `name` cells of the tables under `## heading` (up to the next `## `)."""
    text = page.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.M))


def test_every_layer_kind_and_argument_has_its_entry(generated):
    page = generated["reference/layers.md"]
    missing = []
    for kind, cls in REGISTRY.items():
        if f"\n## {kind}\n" not in page:
            missing.append(kind)
            continue
        documented = entries(page, kind)
        missing += [f"{kind}.{name}" for name in spec_fields(cls) if name not in documented]
    assert not missing, f"not in the layer reference: {missing}"
    assert len(re.findall(r"^## ", page, flags=re.M)) == len(REGISTRY) + 2   # + the common keys and the index


def test_every_section_field_and_augmentation_has_its_entry(generated):
    page = generated["reference/fields.md"]
    missing = [key for key in TOP_KEYS if key not in entries(page, "Top level")]
    for cls in (sections.Data, sections.Source, sections.Train, sections.Optimizer, sections.Schedule,
                sections.EarlyStopping, Budget):
        documented = entries(page, cls.__name__)
        missing += [f"{cls.__name__}.{name}" for name in spec_fields(cls) if name not in documented]
    for name, cls in sections.AUGMENTATIONS.items():
        text = page.split(f"\n### {name}\n", 1)
        if len(text) == 1:
            missing.append(f"augment {name}")
            continue
        section = text[1].split("\n#", 1)[0]
        missing += [f"augment {name}.{field}" for field in spec_fields(cls) if f"| `{field}` |" not in section]
    assert not missing, f"not in the fields reference: {missing}"


def test_every_command_and_option_has_its_entry(generated):
    page = generated["reference/cli.md"]
    parser = parser_for([])
    missing = []
    for name, command in COMMANDS.items():
        for action_name, action in (command.actions or {"": command}).items():
            heading = f"cnnbuild {name} {action_name}".strip()
            if not re.search(rf"^#+ {heading}$", page, flags=re.M):
                missing.append(heading)
            for argument in action.arguments:
                option = argument.names[0]
                shown = option if option.startswith("-") else argument.options.get("metavar", option)
                if f"| `{shown}" not in page:
                    missing.append(f"{heading} {shown}")
                if not argument.options.get("help"):
                    missing.append(f"{heading} {shown}: no help text")
    assert not missing, f"not in the command-line reference: {missing}"
    assert isinstance(parser, argparse.ArgumentParser)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
                    reason="mkdocs and mkdocs-material are not installed (pip install -e '.[docs]')")
def test_the_site_builds_strictly(tmp_path):
    """Every link, every nav entry and every generated page resolves (--strict: a warning fails)."""
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    layers = (site / "reference" / "layers" / "index.html").read_text(encoding="utf-8")
    assert all(f'id="{kind}"' in layers for kind in REGISTRY)
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "cnnbuild data pack" in cli and "--batch" in cli
    assert (site / "quickstart" / "index.html").exists()


# ── cnnbuild init: the shipped examples ──────────────────────────────────────────────────────

def test_every_shipped_example_is_the_spec_in_specs():
    from cnnbuild.cli import examples
    shipped = examples()
    assert {"lenet5", "image_folder", "unet", "dcgan_digits", "resnet50"} <= set(shipped)
    for name, entry in shipped.items():
        assert entry.read_text(encoding="utf-8") == (ROOT / "specs" / f"{name}.yaml").read_text(encoding="utf-8")


def test_init_writes_an_example_that_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "digits_net"]) == 0
    text = (tmp_path / "digits_net.yaml").read_text(encoding="utf-8")
    assert text.startswith("name: digits_net\n")
    assert main(["check", "digits_net.yaml"]) == 0
    assert "digits_net.yaml: ok" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_net.yaml"]   # no partial file left behind


@pytest.mark.parametrize("argv, said", [
    (["init", "digits_net"], "already exists"),
    (["init", "other", "--from", "lenet6"], "--from lenet6: no such example"),
    (["init", "9lives"], "a spec's name is a letter"),
])
def test_init_refusals(tmp_path, monkeypatch, capsys, argv, said):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits_net.yaml").write_text("mine\n", encoding="utf-8")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "hint:" in err
    assert (tmp_path / "digits_net.yaml").read_text(encoding="utf-8") == "mine\n"   # never overwritten


def test_the_quick_start_on_a_folder_of_images(tmp_path, monkeypatch, capsys):
    """docs/quickstart.md's steps: init from image_folder, point it at class folders, check."""
    from PIL import Image
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for name in ("daisy", "roses"):
        (tmp_path / "flowers" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "flowers" / name / f"{i}.png")
    assert main(["init", "flowers", "--from", "image_folder"]) == 0
    spec = tmp_path / "flowers.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("source: shapes ", "source: flowers "), encoding="utf-8")
    capsys.readouterr()
    assert main(["check", "flowers.yaml"]) == 1                                  # 3 units, 2 class folders
    assert "2 classes" in capsys.readouterr().err
    spec.write_text(spec.read_text(encoding="utf-8").replace("units: 3,", "units: 2,"), encoding="utf-8")
    assert main(["check", "flowers.yaml"]) == 0
def test_readme_is_short_and_keeps_the_two_commands_first():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    commands = [line.strip() for line in lines if line.strip().startswith("python3.11 -m venv")]
    assert commands[:2] == [
        "python3.11 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/cnnbuild train specs/lenet5.yaml",
        "python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest -q -n 2 --dist loadfile"]
    first_command = next(i for i, line in enumerate(lines) if line.strip().startswith("python3.11"))
    assert not any(line.startswith("## ") for line in lines[:first_command])   # nothing comes before them



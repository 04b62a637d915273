"""Docs cannot drift: every CLI command is documented, README shows the two commands."""

from pathlib import Path

import click

from twin.cli import main

ROOT = Path(__file__).resolve().parents[1]


def command_paths(group: click.Group, prefix: str = "campus-twin") -> list[str]:
    paths = []
    for name, cmd in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            paths.extend(command_paths(cmd, path))
        else:
            paths.append(path)
    return paths


def test_every_command_is_documented_in_docs_cli_md():
    text = (ROOT / "docs" / "cli.md").read_text()
    missing = [p for p in command_paths(main) if f"## {p}" not in text]
    assert missing == []


def test_every_command_has_an_example_in_its_help():
    def walk(group: click.Group):
        for cmd in group.commands.values():
            if isinstance(cmd, click.Group):
                yield from walk(cmd)
            else:
                yield cmd
    assert [c.name for c in walk(main) if "campus-twin" not in (c.help or "")] == []


def test_readme_gives_the_demo_and_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && campus-twin demo" in readme
    assert "pip install -e '.[test]' && python -m pytest -q" in readme
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()
    assert (ROOT / "docs" / "img" / "floorplan.png").stat().st_size > 10_000

"""Writes docs/reference.md: every command-line option, ini value, `speechlab` command and
configuration key with its default, read from the code itself (tests/test_docs.py fails when the
page is not what this prints).

    python docs/reference.py          # rewrite docs/reference.md
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent / "reference.md"


class _Recorder:
    """Stands in for pytest's parser: records what the plugin declares."""

    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict]] = []
        self.ini: list[tuple[str, str, object]] = []

    def getgroup(self, *args, **kwargs):
        return self

    def addoption(self, *flags, **kwargs) -> None:
        self.options.append((flags, kwargs))

    def addini(self, name, help, type=None, default=None) -> None:  # noqa: A002 - pytest's names
        self.ini.append((name, help, default))


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(value: object) -> str:
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def _fields(cls) -> list[tuple[str, str]]:
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = f.default_factory()  # type: ignore[misc]
        else:
            value = None
        out.append((f.name, _default(value)))
    return out


def _table(title: str, where: str, rows: list[tuple[str, str]]) -> list[str]:
    return [f"### {title}", "", f"`{where}`", "", "| key | default |", "|---|---|",
            *(f"| `{k}` | {_cell(v)} |" for k, v in rows), ""]


def render() -> str:
    import click

    from pytest_speechlab._config import (
        TOP_LEVEL,
        ChatSettings,
        RobustnessSettings,
        SliceSettings,
        SpeechlabConfig,
        TTSSettings,
    )
    from pytest_speechlab.cli import main as speechlab
    from pytest_speechlab.grading import GradePolicy
    from pytest_speechlab.metrics.hallucination import HallucinationConfig
    from pytest_speechlab.metrics.specs import SPECS
    from pytest_speechlab.metrics.stats import MIN_SAMPLES, GatePolicy
    from pytest_speechlab.plugin.options import pytest_addoption
    from pytest_speechlab.tasks.tts import SanityConfig

    parser = _Recorder()
    pytest_addoption(parser)
    lines = ["# Reference", "",
             "Every option, command and setting, generated from the code by `python docs/reference.py`",
             "(`tests/test_docs.py` fails when this page is not what the code declares).", "",
             "## pytest options", "", "| option | default | what it does |", "|---|---|---|"]
    for flags, kwargs in sorted(parser.options, key=lambda o: o[0][0]):
        metavar = f" {kwargs['metavar']}" if kwargs.get("metavar") else ""
        default = kwargs.get("default")
        lines.append(f"| `{', '.join(flags)}{metavar}` | {_default(default if default is not False else None)} | "
                     f"{_cell(kwargs.get('help', ''))} |")
    lines += ["", "## ini values (`[tool.pytest.ini_options]`)", "", "| name | what it is |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(help_)} |" for name, help_, _ in parser.ini]
    lines += ["", "## The `speechlab` command", "", "| command | what it does | options |", "|---|---|---|"]

    def commands(group, prefix):
        for name in sorted(group.commands):
            command = group.commands[name]
            if isinstance(command, click.Group):
                yield from commands(command, f"{prefix} {name}")
                continue
            options = ", ".join(f"`{'/'.join(p.opts)}`" for p in command.params if isinstance(p, click.Option))
            args = " ".join(p.name.upper() for p in command.params if isinstance(p, click.Argument))
            summary = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
            yield f"| `{prefix} {name}{' ' + args if args else ''}` | {_cell(summary)} | {options or '-'} |"

    lines += list(commands(speechlab, "speechlab"))
    lines += ["", "## Configuration (`pyproject.toml`)", "", "### `[tool.speechlab]`", "",
              "| key | default |", "|---|---|"]
    top = dict(_fields(SpeechlabConfig))
    lines += [f"| `{key}` | {_cell(top.get(key, 'a table: below'))} |" for key in TOP_LEVEL
              if key not in ("thresholds", "hallucination", "grades", "regression", "tts", "chat", "robustness",
                             "min_samples", "models", "slices")]
    lines += ["", "### Thresholds", "", "`[tool.speechlab.thresholds]` (and per model: "
              "`[tool.speechlab.thresholds.models.\"NAME\"]`); `[tool.speechlab.min_samples]` for the fewest "
              "samples a figure is judged on.", "",
              "| threshold | default | a figure must be | unit | min samples | what it is |", "|---|---|---|---|---|---|"]
    for spec in SPECS.values():
        bound = "at or below" if spec.direction == "max" else "at or above"
        lines.append(f"| `{spec.name}` | `{spec.default}` | {bound} | {spec.unit} | "
                     f"{MIN_SAMPLES.get(spec.name, '-')} | {_cell(spec.about or spec.label)} |")
    lines.append("")
    lines += _table("The regression gate", "[tool.speechlab.regression]", _fields(GatePolicy)
                    + [("baseline_models", "- (a table: candidate model = baseline model)")])
    lines += _table("Hallucination detectors", "[tool.speechlab.hallucination]", _fields(HallucinationConfig))
    lines += _table("Readiness grades", "[tool.speechlab.grades]", _fields(GradePolicy))
    lines += _table("TTS", "[tool.speechlab.tts]", _fields(TTSSettings))
    lines += _table("TTS audio sanity", "[tool.speechlab.tts.sanity]", _fields(SanityConfig))
    lines += _table("Chat", "[tool.speechlab.chat]", _fields(ChatSettings))
    lines += _table("Robustness", "[tool.speechlab.robustness]", _fields(RobustnessSettings))
    lines += _table("Error rates by slice", "[tool.speechlab.slices]", _fields(SliceSettings))
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE} ({PAGE.read_text().count(chr(10))} lines)", file=sys.stderr)

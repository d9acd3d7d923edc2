"""The interface of a feature (see ``features/__init__``)."""
from __future__ import annotations

from typing import Any


class Feature:
    """The interface (and the defaults) of a feature; subclasses set ``name`` and keep ``engine``."""

    name = ""
    # its command-line options: (flags, keyword arguments of argparse's add_argument); the pytest
    # plugin adds them, and ``configure`` reads them (a plugin's feature uses its settings table)
    options: tuple[tuple[tuple[str, ...], dict], ...] = ()

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def configure(self, option: Any) -> None:
        """Read its options from ``option`` (pytest's ``config.option``)."""

    @property
    def table(self) -> dict:
        """Its own settings: ``[tool.speechlab.features.NAME]`` of pyproject.toml (checked by the feature)."""
        return self.engine.settings.features.get(self.name, {})

    def evaluations(self) -> list:
        """What it evaluated (to tell when the serialized form must be built again)."""
        return []

    def serialized(self) -> dict:
        return {}

    def aside(self) -> set[str]:
        return set()

    def cap(self, grade, model: str):
        return grade

    def idle(self) -> set[str]:
        """The plugin's fixtures whose tests have nothing to do this session (deselected, not
        skipped): the regression suite without a baseline, say."""
        return set()

    def report_lines(self) -> list[str]:
        """Its lines in the terminal summary (the built-in features' sections have their own renderers)."""
        return []

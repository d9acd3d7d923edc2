"""docs/contributing.md's worked example, run as written: a feature added in three files (its class
and hook in conftest.py, its suite, its setting) is evaluated, reported and judged like a built-in one."""
from __future__ import annotations

import json
import re

import pytest

from helpers import REPO

GUIDE = REPO / "docs" / "contributing.md"


def blocks() -> dict[str, str]:
    """The guide's code blocks that name a file (```lang title="path"), by path."""
    text = GUIDE.read_text(encoding="utf-8")
    return {m["path"]: m["code"] for m in re.finditer(r'```\w+ title="(?P<path>[^"]+)"\n(?P<code>.*?)```', text, re.S)}


def test_the_guide_adds_a_feature_in_three_files():
    assert sorted(blocks()) == ["conftest.py", "pyproject.toml", "suites/test_verbosity.py"]


def add_the_feature(project, pyproject_text: str) -> None:
    """The guide's feature and suite written into ``project``, ``pyproject_text`` added to its pyproject.toml."""
    code = blocks()
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + "\n" + code["conftest.py"])
    (project.path / "suites" / "test_verbosity.py").write_text(code["suites/test_verbosity.py"])
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n" + pyproject_text)


def test_the_worked_example_runs_as_written(speechlab_project):
    add_the_feature(speechlab_project, blocks()["pyproject.toml"])
    conftest = speechlab_project.path / "conftest.py"

    good = speechlab_project.runpytest("suites/test_verbosity.py", "--speechlab-no-db", "--speechlab-json", "good.json")
    good.assert_outcomes(passed=1)
    good.stdout.fnmatch_lines(["verbosity: fake/perfect on data/manifest.jsonl: 1.00 words written per word said"])
    figures = json.loads((speechlab_project.path / "good.json").read_text())["features"]["verbosity"]
    assert figures == [{"model": "fake/perfect", "dataset": "data/manifest.jsonl", "ratio": 1.0, "limit": 1.25}]

    # a model that repeats itself: the feature's check fails with its figure and the configured limit
    conftest.write_text(conftest.read_text().replace('"hello world"', '"hello world " * 5'))
    padded = speechlab_project.runpytest("suites/test_verbosity.py", "--speechlab-no-db")
    padded.assert_outcomes(failed=1)
    padded.stdout.fnmatch_lines(["*fake/perfect wrote 1.* words per word said on data/manifest.jsonl (limit 1.25)*"])


def test_a_bad_setting_of_the_feature_is_its_clear_error(speechlab_project):
    add_the_feature(speechlab_project, '[tool.speechlab.features.verbosity]\nmax_ratio = "lots"\n'
                                       '[tool.speechlab.features.nosuch]\nx = 1\n')
    with pytest.warns(UserWarning, match=r"\[tool.speechlab.features.nosuch\]: no feature named 'nosuch' is installed"):
        result = speechlab_project.runpytest("suites/test_verbosity.py", "--speechlab-no-db", "--speechlab-json", "run.json")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "feature 'verbosity': serialized() failed: SpeechlabError" in out  # said; the rest written
    assert json.loads((speechlab_project.path / "run.json").read_text())["evaluations"]
    assert "[tool.speechlab.features.verbosity] max_ratio: a positive number, got 'lots'" in out

"""The documentation holds together: the README is short and its links resolve, every docs page is
in the site's navigation, and the reference page is what the code declares (options, commands,
settings with their defaults). `mkdocs build --strict` itself runs in CI (.ci/packages.sh)."""
from __future__ import annotations

import importlib.util
import re

from helpers import REPO

DOCS = REPO / "docs"


def test_the_readme_is_short_and_its_links_resolve():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count("\n") < 300
    targets = re.findall(r"\]\(((?:docs/)[^)#]+)(?:#[^)]*)?\)", readme)
    assert len(targets) >= 20
    assert not [t for t in targets if not (REPO / t).is_file()], "README links to missing files"


def test_every_page_is_in_the_navigation():
    nav = re.findall(r":\s*([\w./-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert sorted(set(nav)) == pages, "docs/*.md and the nav of mkdocs.yml differ"


def test_the_reference_page_is_what_the_code_declares():
    spec = importlib.util.spec_from_file_location("reference", DOCS / "reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    assert reference.PAGE.read_text(encoding="utf-8") == reference.render(), (
        "docs/reference.md is not what the code declares: run `python docs/reference.py`")
    page = reference.render()
    # a new option or setting shows up there by itself
    assert "`--speechlab-baseline-model CANDIDATE=BASELINE`" in page and "| `baseline_models` |" in page
    assert "| `min_effect` | `0.005` |" in page and "| `wer` | `0.2` | at or below |" in page

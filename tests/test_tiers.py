"""The test tiers (tests/conftest.py): every test named there exists, so that a renamed slow test
cannot drop silently into the fast tier, and every collected test carries a tier."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import REAL_MODEL_MODULES, REAL_MODEL_TESTS, SLOW_TESTS
from helpers import REPO


def collected(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "tests", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTEST_ADDOPTS": ""})
    assert out.returncode in (0, 5), out.stdout[-2000:] + out.stderr[-2000:]  # 5: none selected
    return [line for line in out.stdout.splitlines() if "::" in line]


def test_every_test_the_tiers_name_exists_and_every_test_has_a_tier():
    slow, fast = collected("-m", "slow"), collected("-m", "not slow")
    names = {line.split("[")[0].removeprefix("tests/") for line in slow}
    assert not (REAL_MODEL_TESTS | SLOW_TESTS) - names, "a slow test named in the tiers is not in the slow tier"
    assert all((REPO / "tests" / f"{module}.py").is_file() for module in REAL_MODEL_MODULES)
    assert slow and fast and not set(slow) & set(fast)
    assert {line.split("::")[0] for line in slow} >= {f"tests/{m}.py" for m in REAL_MODEL_MODULES}
    untiered = collected("-m", "not (unit or e2e or real_model or services or browser or postgres)")
    assert untiered == []

"""The dependency scan in .ci/run: a skipped audit is said as NOT AUDITED with its count, never as
clean; a known vulnerability fails it."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

from helpers import REPO

spec = importlib.util.spec_from_file_location("ci_audit", REPO / ".ci" / "audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)


def test_a_known_vulnerability_fails_the_scan():
    report = {"dependencies": [
        {"name": "requests", "version": "2.19.0", "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}]},
        {"name": "numpy", "version": "2.0.0", "vulns": []}]}
    status, lines = audit.verdict(report)
    assert status == 1
    assert lines[0].startswith("pip-audit: 2 packages: 2 audited, 0 NOT AUDITED") and "1 known vulnerabilities" in lines[0]
    assert "  requests 2.19.0: PYSEC-2018-28 (fixed in: 2.20.0)" in lines


def test_a_skipped_audit_is_never_a_clean_bill():
    report = {"dependencies": [{"name": n, "skip_reason": f"Dependency not found on PyPI and could not be audited: {n}"}
                               for n in ("numpy", "jiwer", "pytest-speechlab")]}
    status, lines = audit.verdict(report, own={"pytest-speechlab"})
    text = "\n".join(lines)
    assert status == 0 and "NOT AUDITED: 2 of 2 packages could not be checked" in text
    assert "1 of this project" in lines[0] and "no known vulnerabilities" not in text.lower()
    assert audit.verdict({"dependencies": [{"name": "numpy", "version": "2.0.0", "vulns": []}]})[1][-1] == \
        "audited: no known vulnerabilities in the 1 packages checked"
    assert audit.verdict({"error": "x"})[0] == 2


def test_a_vulnerable_pin_is_caught_or_said_not_audited(tmp_path):
    """Against pip-audit itself: requests 2.19.0 has published advisories. With vulnerability data
    reachable the scan fails naming one; without it (these machines) it says NOT AUDITED, exit 0."""
    pins = tmp_path / "requirements.txt"
    pins.write_text("requests==2.19.0\n")
    out = subprocess.run([sys.executable, str(REPO / ".ci" / "audit.py"), "-r", str(pins), "--no-deps", "--disable-pip"],
                         capture_output=True, text=True, timeout=600)
    if "NOT AUDITED: 1 of 1" in out.stdout:
        assert out.returncode == 0 and "no known vulnerabilities" not in out.stdout.lower()
    else:
        assert out.returncode == 1 and "requests 2.19.0:" in out.stdout, out.stdout + out.stderr

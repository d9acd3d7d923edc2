"""A dependency vulnerability scan that never passes off a skipped audit as a clean one.

Runs pip-audit (JSON output) on the installed environment, or with the arguments given (e.g.
``-r requirements.txt --no-deps --disable-pip``), and reads what it did per package. pip-audit
prints "No known vulnerabilities found" and exits 0 even when it could audit nothing (an index
without PyPI's JSON API, no network): here every package it skipped is counted and said as NOT
AUDITED, with the reason. Exit status: 1 when a known vulnerability is found, 0 otherwise (a scan
that could not reach vulnerability data is reported, not failed: CI machines without internet
access would otherwise never be green), 2 when pip-audit itself failed to run.

    python .ci/audit.py                # the installed environment
    python .ci/audit.py -r reqs.txt --no-deps --disable-pip
"""
from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import distributions

OWN_PREFIXES = ("pytest-speechlab", "speechlab-")  # this project's packages: not on PyPI by design


def own_packages() -> set[str]:
    return {d.metadata["Name"].lower() for d in distributions()
            if d.metadata["Name"] and d.metadata["Name"].lower().startswith(OWN_PREFIXES)}


def verdict(report: dict, own: set[str] = frozenset()) -> tuple[int, list[str]]:
    """pip-audit's JSON report -> (exit status, lines to print)."""
    deps = report.get("dependencies") if isinstance(report, dict) else None
    if not isinstance(deps, list):
        return 2, ["pip-audit: no dependency list in its output: nothing was audited"]
    audited, skipped, ours, vulnerable = [], [], [], []
    for dep in deps:
        if not isinstance(dep, dict):
            continue
        name = str(dep.get("name", "?"))
        if "skip_reason" in dep:
            (ours if name.lower() in own else skipped).append((name, str(dep["skip_reason"])))
            continue
        audited.append(name)
        for vuln in dep.get("vulns") or ():
            fixes = ", ".join(vuln.get("fix_versions") or ()) or "no fixed version"
            vulnerable.append(f"  {name} {dep.get('version', '?')}: {vuln.get('id', '?')} (fixed in: {fixes})")
    lines = [f"pip-audit: {len(deps)} packages: {len(audited)} audited, {len(skipped)} NOT AUDITED, "
             f"{len(ours)} of this project (not on PyPI), {len(vulnerable)} known vulnerabilities"]
    if vulnerable:
        lines += ["KNOWN VULNERABILITIES:", *vulnerable]
    if skipped:
        reasons = sorted({reason.split(":")[0] for _, reason in skipped})
        lines.append(f"NOT AUDITED: {len(skipped)} of {len(deps) - len(ours)} packages could not be checked "
                     f"({'; '.join(reasons)[:300]}); this is not a clean bill: no vulnerability data was "
                     f"reached for them")
        lines.append("  not audited: " + ", ".join(name for name, _ in skipped[:40])
                     + (f", ... ({len(skipped) - 40} more)" if len(skipped) > 40 else ""))
    elif not vulnerable and audited:
        lines.append(f"audited: no known vulnerabilities in the {len(audited)} packages checked")
    return (1 if vulnerable else 0), lines


def main(argv: list[str]) -> int:
    command = [sys.executable, "-m", "pip_audit", "-f", "json", "--progress-spinner", "off", *(argv or ["-l"])]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"pip-audit could not run ({type(exc).__name__}): NOT AUDITED")
        return 2
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit failed (exit {out.returncode}): NOT AUDITED\n{out.stderr[-2000:]}")
        return 2
    status, lines = verdict(report, own_packages())
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

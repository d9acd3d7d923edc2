#!/usr/bin/env bash
# Packaging and documentation checks (CI): a wheel and an sdist of pytest-speechlab and of every
# model plugin, each checked by `twine check --strict`; the shipped CI examples validated against the
# GitHub workflow and GitLab CI schemas (check-jsonschema's vendored copies: offline); the
# documentation site built with `mkdocs build --strict`. In a venv of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .ci/tools
. .ci/tools/bin/activate
pip install -q build==1.6.1 twine==7.0.0 check-jsonschema==0.39.0 mkdocs==1.6.1 mkdocs-material==9.8.2
rm -rf dist
# built from a copy of the files git knows (tracked, and new ones not ignored): a build writes
# NAME.egg-info into the project's folder, which would make an uninstalled plugin look installed
# to any process that puts that folder on sys.path (the tests of lfm-audio do)
copy=$(mktemp -d)
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$copy"
(cd "$copy" && printf '%s\n' . model_plugins/*/) \
  | xargs -P 2 -I{} python -m build --sdist --wheel --outdir "$PWD/dist" "$copy/{}" >/dev/null
rm -rf "$copy"
ls dist
twine check --strict dist/*
check-jsonschema --builtin-schema vendor.github-workflows docs/ci/github-actions.yml
check-jsonschema --builtin-schema vendor.gitlab-ci docs/ci/gitlab-ci.yml
# The documentation site: no broken link or anchor, every page in the navigation.
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir .ci/site && rm -rf .ci/site
deactivate

# The wheel works outside a clone: installed alone in a fresh venv, `speechlab init` writes the suites
# and a commented configuration into an empty folder, and pytest collects them there.
rm -rf .ci/wheel-venv .ci/wheel-project && python3 -m venv .ci/wheel-venv && mkdir .ci/wheel-project
.ci/wheel-venv/bin/pip install -q dist/pytest_speechlab-*.whl dist/speechlab_pocketsphinx-*.whl
(cd .ci/wheel-project && ../wheel-venv/bin/speechlab init . >/dev/null && HF_HUB_OFFLINE=1 ../wheel-venv/bin/pytest \
  suites/ -q -p no:cacheprovider --collect-only --speechlab-model pocketsphinx | tail -1)
rm -rf .ci/wheel-venv .ci/wheel-project

"""Regression gate: each model x dataset against a baseline run from the results database.

Runs only with --speechlab-baseline NAME (deselected otherwise). A regression is a WER or CER that is
significantly worse (paired permutation test, alpha) by at least the minimum effect, or an RTF that
grew beyond its tolerance ([tool.speechlab.regression]). Without --speechlab-fail-on-regression it
warns; with it, it fails, naming the utterances that got worse.
"""
import warnings

import pytest


def test_no_regression_against_baseline(speechlab_regression, speechlab_fail_on_regression):
    if isinstance(speechlab_regression, str):
        pytest.skip(speechlab_regression)
    found = speechlab_regression.regressions
    if not found:
        return
    message = "regression against the baseline: " + "; ".join(found) + "\n" + speechlab_regression.report()
    if speechlab_fail_on_regression:
        pytest.fail(message, pytrace=False)
    warnings.warn(message, stacklevel=1)

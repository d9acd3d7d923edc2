"""Robustness: how far each model's WER rises through noise, a room, a phone line, a codec,
packet loss, faster speech and clipping, each at four severities.

Runs with ``--speechlab-robustness`` (or ``[tool.speechlab.robustness] enabled = true``): it is
four evaluations per perturbation per model and dataset. Every severity is an ordinary perturbed
dataset (``speechlab/speech+noise:snr=10,...``): cached, recorded and reported like any other, left
out of the readiness grade unless selected as a dataset. Fails where WERD (perturbed WER - clean
WER, paired) passes ``[tool.speechlab.thresholds] werd`` at a severity up to
``[tool.speechlab.robustness] gate_severity``; the table of every severity, NWERD against the
reference model and a plot of WER against severity go to the terminal and the HTML report.
"""
import pytest

from pytest_speechlab import check_robustness

pytestmark = pytest.mark.speechlab_datasets(kind="speech")


def test_robustness(speechlab_robustness, speechlab_thresholds):
    check_robustness(speechlab_robustness, speechlab_thresholds["werd"])

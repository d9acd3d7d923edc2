"""Speed: real-time factor (processing seconds / audio seconds) under the configured threshold.

Model load and one warm-up call are excluded; threads, device and CPU are in the summary.
"""
from pytest_speechlab import check_below


def test_real_time_factor(speechlab_eval, speechlab_thresholds):
    check_below(speechlab_eval, "rtf", speechlab_thresholds["rtf"])

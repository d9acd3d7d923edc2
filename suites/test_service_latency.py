"""A model behind a service: its latency as users feel it, and its failures.

Runs only on models that are clients of a running service (``openai-api/*``, ``wyoming/*`` and
their variants). End-to-end seconds per request at p95/p99 under the declared ``concurrency``;
for a streaming service also the time to the first partial transcript and from the end of the
audio to the final one; the share of requests that failed and that needed a retry. One warm-up
request is excluded; thresholds in ``[tool.speechlab.thresholds]``.
"""
import pytest

from pytest_speechlab import check_latency

pytestmark = pytest.mark.speechlab_models(service=True)


def test_service_latency(speechlab_eval, speechlab_thresholds):
    check_latency(speechlab_eval, speechlab_thresholds)

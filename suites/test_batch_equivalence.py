"""Batch equivalence: a model decoded in batches gives the transcripts it gives one clip at a time.

Runs with --speechlab-batch-equivalence N (deselected otherwise). Each selected ASR model with a batch
method is evaluated at batch size N and at batch 1 on each speech dataset; the summary shows the
paired WER difference with its 95% interval, every utterance whose normalized transcript differs, and
the throughput of each. The share of differing utterances must stay under the
batch_disagreement_rate threshold, and batching must not make the WER significantly worse.
"""
import pytest


@pytest.mark.speechlab_datasets(kind="speech")
def test_batched_transcripts_match_batch_one(speechlab_batch_comparison, speechlab_session):
    if isinstance(speechlab_batch_comparison, str):
        pytest.skip(speechlab_batch_comparison)
    limit = speechlab_session.settings.thresholds["batch_disagreement_rate"]
    for comparison in speechlab_batch_comparison:
        worse = comparison.wer is not None and comparison.wer.ci[0] > 0
        if comparison.disagreement_rate > limit or worse:
            pytest.fail(f"batch {comparison.size} differs from batch 1 on {len(comparison.differing)}/"
                        f"{comparison.compared} utterances ({comparison.disagreement_rate:.3f}, limit {limit})"
                        + ("; WER significantly worse" if worse else "") + ":\n" + "\n".join(comparison.report()),
                        pytrace=False)

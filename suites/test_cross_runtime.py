"""Cross-runtime: the same weights with the same decoding give the same transcripts on every runtime.

Runs when two or more models are selected (deselected otherwise). Models that come from the same
weights (faster-whisper/tiny.en, openai-whisper/tiny.en, transformers/tiny.en) are rebuilt as
"NAME[greedy]" variants with one decoding (greedy, float32, no timestamps) and evaluated on each speech
dataset; the summary shows WER, RTF and load time per runtime and every utterance whose normalized
transcript differs. The share of such utterances must stay under the runtime_disagreement_rate
threshold.
"""
import pytest


@pytest.mark.speechlab_datasets(kind="speech")
def test_runtimes_agree_on_greedy_transcripts(speechlab_runtime_comparison, speechlab_session):
    if isinstance(speechlab_runtime_comparison, str):
        pytest.skip(speechlab_runtime_comparison)
    for comparison in speechlab_runtime_comparison:
        limit = speechlab_session.settings.thresholds["runtime_disagreement_rate"]
        if comparison.disagreement_rate > limit:
            pytest.fail(f"runtimes disagree on {len(comparison.differing)}/{comparison.compared} utterances "
                        f"({comparison.disagreement_rate:.3f} > {limit}):\n" + "\n".join(comparison.report()),
                        pytrace=False)

"""Chat: answer keys (aliases, required and forbidden facts, on whole words), topical relevance, empty or runaway responses, latency, and the
spoken-question pipeline (TTS speaks the question, ASR transcribes it, the chat model answers).

Deselected when no chat model is selected (--speechlab-model transformers/smollm2-135m-instruct).
Limits: [tool.speechlab.chat] min_pass_rate, min_relevance, max_first_token_s.
"""
import pytest


def test_chat_answers_pass_their_answer_keys(speechlab_chat_eval, speechlab_session):
    limit = speechlab_session.settings.chat.min_pass_rate
    rate = speechlab_chat_eval.pass_rate
    assert rate is not None and rate >= limit, (
        f"pass rate {rate} < {limit}:\n" + "\n".join(speechlab_chat_eval.failures(0.0)))


def test_chat_answers_are_on_topic(speechlab_chat_eval, speechlab_session):
    if speechlab_chat_eval.relevance_judge is None:
        pytest.skip("no relevance judge installed ([tool.speechlab.chat] relevance_judge)")
    limit = speechlab_session.settings.chat.min_relevance
    off = [i for i in speechlab_chat_eval.answered if i.relevance is not None and i.relevance < limit]
    assert not off, "off-topic answers:\n" + "\n".join(
        f"{i.prompt.id}: relevance {i.relevance:.2f} < {limit}: {i.answer[:120]!r}" for i in off)


def test_chat_no_empty_or_runaway_responses(speechlab_chat_eval):
    flagged = speechlab_chat_eval.flagged
    assert not flagged and not speechlab_chat_eval.errors, "\n".join(
        [f"{i.prompt.id}: {'; '.join(i.problems)}: {i.answer[:120]!r}" for i in flagged]
        + [str(e) for e in speechlab_chat_eval.errors])


def test_chat_time_to_first_token(speechlab_chat_eval, speechlab_session):
    limit = speechlab_session.settings.chat.max_first_token_s
    ttft = speechlab_chat_eval.median_first_token_seconds
    if ttft is None:
        pytest.skip(f"{speechlab_chat_eval.model} does not stream: no time to first token")
    assert ttft <= limit, f"median time to first token {ttft:.2f} s > {limit} s"


def test_spoken_questions_are_answered(speechlab_spoken_eval, speechlab_session):
    if isinstance(speechlab_spoken_eval, str):
        pytest.skip(speechlab_spoken_eval)
    items = speechlab_spoken_eval.items
    assert items, "no prompt is marked spoken"
    ok = sum(i.stage == "ok" for i in items) / len(items)
    limit = speechlab_session.settings.chat.min_pass_rate
    assert ok >= limit and not any(i.stage == "error" for i in items), "\n".join(speechlab_spoken_eval.report())

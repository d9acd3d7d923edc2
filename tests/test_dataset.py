"""Manifest and LibriSpeech loading, audio reading: every bad input names its line and problem."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers import write_audio, write_manifest
from pytest_speechlab import SpeechlabError, load_dataset
from pytest_speechlab._audio import AudioError, read_audio, to_model_input


def messages(dataset) -> list[str]:
    return [str(e) for e in dataset.errors]


def test_good_manifest_loads_with_ids_kinds_and_relative_paths(tmp_path):
    write_audio(tmp_path / "audio" / "x.wav", 1.0)
    write_audio(tmp_path / "audio" / "y.wav", 1.0)
    manifest = write_manifest(tmp_path / "m.jsonl", [
        {"audio": "audio/x.wav", "text": "hello", "duration": 1.0, "language": "en"},
        {"audio_filepath": "audio/y.wav", "id": "why", "kind": "nonspeech"},
        "",
        "# a comment",
    ])
    dataset = load_dataset(manifest)
    assert dataset.errors == []
    x, y = dataset.utterances
    assert (x.id, x.text, x.kind, x.language, x.duration) == ("audio/x", "hello", "speech", "en", 1.0)
    assert (y.id, y.kind, y.text) == ("why", "nonspeech", "")
    assert x.audio_path == str(tmp_path / "audio" / "x.wav")
    assert x.source.endswith("m.jsonl line 1")


@pytest.mark.parametrize("line, problem", [
    ('{"audio": "ok.wav", "text": "hi"', "line 1: not valid JSON"),
    ('["ok.wav", "hi"]', "line 1: expected a JSON object, got a list"),
    ('{"text": "hi"}', "line 1: missing 'audio' (or 'audio_filepath')"),
    ('{"audio": "ok.wav"}', "line 1: missing 'text'"),
    ('{"audio": "ok.wav", "text": "   "}', "line 1: empty 'text' on a speech utterance"),
    ('{"audio": "ok.wav", "text": 5}', "line 1: 'text' must be a string, got a number 5"),
    ('{"audio": "ok.wav", "text": "hi", "kind": "music"}', "line 1: 'kind' must be one of"),
    ('{"audio": "gone.wav", "text": "hi"}', "line 1: audio 'gone.wav' not found (relative to"),
    ('{"audio": "ok.wav", "text": "hi", "duration": -1}', "line 1: 'duration' must be a positive number"),
])
def test_each_bad_line_names_line_and_problem_and_good_lines_still_load(tmp_path, line, problem):
    write_audio(tmp_path / "ok.wav", 1.0)
    manifest = write_manifest(tmp_path / "m.jsonl", [line, {"audio": "ok.wav", "text": "fine", "id": "good"}])
    dataset = load_dataset(manifest)
    assert len(dataset.errors) == 1
    assert problem in messages(dataset)[0]
    assert "m.jsonl" in messages(dataset)[0]
    assert [u.id for u in dataset.utterances] == ["good"]


def test_non_utf8_line_and_duplicate_id(tmp_path):
    write_audio(tmp_path / "ok.wav", 1.0)
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(
        b'{"audio": "ok.wav", "text": "caf\xe9"}\n'
        b'{"audio": "ok.wav", "text": "one", "id": "u"}\n'
        b'{"audio": "ok.wav", "text": "two", "id": "u"}\n'
    )
    dataset = load_dataset(manifest)
    assert "line 1: not valid UTF-8" in messages(dataset)[0]
    assert "line 3: duplicate id 'u' (first on line 2)" in messages(dataset)[1]
    assert [u.text for u in dataset.utterances] == ["one"]


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(SpeechlabError, match="not found"):
        load_dataset(tmp_path / "nope.jsonl")


def test_librispeech_layout(tmp_path):
    chapter = tmp_path / "84" / "121123"
    write_audio(chapter / "84-121123-0000.flac", 1.0, fmt="FLAC")
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n84-121123-0002\n"
    )
    dataset = load_dataset(tmp_path)
    assert [(u.id, u.text) for u in dataset.utterances] == [("84-121123-0000", "GO DO YOU HEAR")]
    assert "line 2: audio '84-121123-0001.flac' not found" in messages(dataset)[0]
    assert "line 3: no transcript after id" in messages(dataset)[1]


def test_folder_without_transcripts_is_rejected(tmp_path):
    with pytest.raises(SpeechlabError, match=r"no \*.trans.txt"):
        load_dataset(tmp_path)


# -- audio -----------------------------------------------------------------------------------


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    path = write_audio(tmp_path / "s.flac", 2.0, rate=44100, channels=2, fmt="FLAC")
    raw = read_audio(str(path))
    assert (raw.sample_rate, raw.channels) == (44100, 2)
    samples = to_model_input(raw, 16000)
    assert samples.ndim == 1 and samples.dtype == np.float32
    assert len(samples) == 32000
    assert 0.06 < np.sqrt(np.mean(samples**2)) < 0.08  # a 0.1-amplitude sine survives: RMS 0.0707


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_bytes(b"RIFF\x00\x00garbage" * 10), "cannot decode audio"),
    (lambda p: sf.write(p, np.zeros(0, dtype=np.float32), 16000), "audio is empty"),
    (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2], dtype=np.float32), 16000, subtype="FLOAT"),
     "1 NaN or infinite samples"),
])
def test_unusable_audio_is_rejected_with_the_reason(tmp_path, make, problem):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=problem):
        read_audio(str(path))

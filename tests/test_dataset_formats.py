"""Dataset formats: the same five fixture utterances as JSONL, NeMo JSONL, CSV, TSV and a Common
Voice release load to the same utterances and the same figures; a file in no known format is one
clear error; a plugin adds a format through speechlab_register_dataset_formats."""
from __future__ import annotations

import csv
import gzip
import json
import shutil
import types
from pathlib import Path

import pytest

from helpers import REPO

# written by the datasets library in these tests: in the [test] extra, not in a main-job install
OPTIONAL = "the Hugging Face datasets package is not installed (pip install -e '.[test]')"
from pytest_speechlab import Dataset, SpeechlabError, Transcript, Utterance, evaluate_models, hookimpl, load_dataset

FIXTURES = REPO / "fixtures" / "speech"
FIVE = [json.loads(line) for line in (FIXTURES / "manifest.jsonl").read_text().splitlines()[:5]]


class Constant:
    """Says the same sentence to everything: its figures depend only on the references."""
    sample_rate = 16000

    def transcribe(self, audio):
        return Transcript("turn left at the next corner please")


@hookimpl
def speechlab_register_models(register):
    register("constant/asr", task="asr", load=lambda params: Constant())


def _pipe_format_load(path, name):
    dataset = Dataset(name, str(path))
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        audio, _, text = line.partition("|")
        dataset.utterances.append(Utterance(audio.rsplit(".", 1)[0], str(path.parent / audio), text,
                                            source=f"{path.name} line {number}"))
    return dataset


@hookimpl
def speechlab_register_dataset_formats(register):
    register("pipe", detect=lambda path: path.suffix == ".pipe", load=_pipe_format_load,
             description="audio|text lines")


PLUGIN = types.SimpleNamespace(speechlab_register_models=speechlab_register_models,
                               speechlab_register_dataset_formats=speechlab_register_dataset_formats)


def copy_audio(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for entry in FIVE:
        shutil.copy(FIXTURES / entry["audio"], folder / entry["audio"])


def write_formats(root):
    """The five utterances in every format; returns {format: path}."""
    copy_audio(root)
    paths = {"jsonl": root / "five.jsonl", "nemo": root / "nemo.json", "csv": root / "five.csv",
             "tsv": root / "five.tsv", "no extension": root / "manifest"}
    paths["jsonl"].write_text("".join(json.dumps({"id": e["id"], "audio": e["audio"], "text": e["text"]}) + "\n" for e in FIVE))
    paths["nemo"].write_text("".join(json.dumps({"audio_filepath": e["audio"], "text": e["text"], "id": e["id"]}) + "\n"
                                     for e in FIVE))
    with open(paths["csv"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "audio", "text"])
        writer.writerows([e["id"], e["audio"], e["text"]] for e in FIVE)
    for key, delimiter in (("tsv", "\t"), ("no extension", "\t")):
        paths[key].write_text("utterance_id\tfile\ttranscript\n" + "".join(
            f"{e['id']}\t{e['audio']}\t{e['text']}\n" for e in FIVE))
    cv = root / "cv-corpus" / "en"  # a Common Voice release: clips/ and test.tsv
    copy_audio(cv / "clips")
    (cv / "test.tsv").write_text("client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
                                 + "".join(f"abc\t{e['audio']}\t{e['text']}\t2\t0\t\t\t\ten\t\n" for e in FIVE))
    paths["common voice"] = cv / "test.tsv"
    (root / "five.pipe").write_text("".join(f"{e['audio']}|{e['text']}\n" for e in FIVE))
    paths["plugin"] = root / "five.pipe"
    paths.update(write_huggingface(root / "hf"))
    paths.update(write_lhotse(root / "lhotse"))
    return paths


def write_huggingface(root):
    """The five utterances as a Hugging Face dataset with an Audio column holding the files' bytes,
    written by the datasets library itself: with save_to_disk and as parquet."""
    datasets = pytest.importorskip("datasets", reason=OPTIONAL)

    ds = datasets.Dataset.from_dict({"id": [e["id"] for e in FIVE], "sentence": [e["text"] for e in FIVE],
                                     "audio": [str(FIXTURES / e["audio"]) for e in FIVE]})
    ds = ds.cast_column("audio", datasets.Audio(decode=False)).map(  # embed the bytes, as the hub's parquet does
        lambda row: {"audio": {"bytes": Path(row["audio"]["path"]).read_bytes(), "path": Path(row["audio"]["path"]).name}})
    ds.save_to_disk(str(root / "saved"))
    ds.to_parquet(str(root / "five.parquet"))
    return {"huggingface save_to_disk": root / "saved", "huggingface parquet": root / "five.parquet"}


def write_lhotse(root):
    """The five utterances as lhotse manifests written by lhotse: recordings + supervisions, and a CutSet."""
    pytest.importorskip("lhotse", reason="lhotse is not installed (pip install -e '.[test]')")
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    copy_audio(root)
    recordings = RecordingSet.from_recordings(Recording.from_file(root / e["audio"], recording_id=e["id"]) for e in FIVE)
    supervisions = SupervisionSet.from_segments(
        SupervisionSegment(id=e["id"], recording_id=e["id"], start=0.0, duration=recordings[e["id"]].duration,
                           text=e["text"], language="English") for e in FIVE)
    recordings.to_file(root / "recordings.jsonl.gz")
    supervisions.to_file(root / "supervisions.jsonl.gz")
    CutSet.from_manifests(recordings=recordings, supervisions=supervisions).to_file(root / "cuts.jsonl")
    return {"lhotse folder": root, "lhotse supervisions": root / "supervisions.jsonl.gz", "lhotse cuts": root / "cuts.jsonl"}


def test_every_format_loads_the_same_five_utterances_to_the_same_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHLAB_AUDIO_DIR", str(tmp_path / "embedded"))
    paths = write_formats(tmp_path)
    figures = {}
    for fmt, path in paths.items():
        if fmt != "plugin":
            dataset = load_dataset(path)
            assert not dataset.errors, (fmt, dataset.errors)
            assert [u.text for u in dataset.utterances] == [e["text"] for e in FIVE], fmt
            assert [open(u.audio_path, "rb").read() for u in dataset.utterances] == [
                (FIXTURES / e["audio"]).read_bytes() for e in FIVE], fmt
        (result,) = evaluate_models(["constant/asr"], [str(path)], pyproject=None, plugins=[PLUGIN])
        figures[fmt] = (len(result.scored), result.words, result.wer, result.cer)
    assert len(set(figures.values())) == 1, figures
    assert figures["jsonl"][0] == 5
    cv = load_dataset(paths["common voice"])
    assert {u.language for u in cv.utterances} == {"en"}  # the locale column
    assert {u.language for u in load_dataset(paths["lhotse cuts"]).utterances} == {"en"}  # "English"
    # the embedded audio was written once per clip, named by its content
    assert len(list((tmp_path / "embedded").iterdir())) == 5


def test_a_dataset_dict_a_damaged_parquet_and_missing_sources_are_clear_errors(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason=OPTIONAL)

    monkeypatch.setenv("SPEECHLAB_AUDIO_DIR", str(tmp_path / "embedded"))
    hf = write_huggingface(tmp_path / "hf")
    datasets.DatasetDict({"test": datasets.load_from_disk(str(hf["huggingface save_to_disk"]))}).save_to_disk(
        str(tmp_path / "dict"))
    with pytest.raises(SpeechlabError, match="a DatasetDict with splits test: give one split's folder"):
        load_dataset(tmp_path / "dict")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(SpeechlabError, match="bad.parquet: not a readable parquet file"):
        load_dataset(tmp_path / "bad.parquet")
    lhotse = write_lhotse(tmp_path / "lhotse")
    (lhotse["lhotse folder"] / FIVE[0]["audio"]).unlink()
    supervisions = lhotse["lhotse supervisions"]
    with gzip.open(supervisions, "at") as fh:
        fh.write(json.dumps({"id": "orphan", "recording_id": "nowhere", "start": 0, "duration": 1, "text": "x"}) + "\n")
    dataset = load_dataset(supervisions)
    assert len(dataset.utterances) == 4 and len(dataset.errors) == 2
    assert "not found" in dataset.errors[0].message and "'nowhere' is not in recordings.jsonl.gz" in dataset.errors[1].message


@pytest.mark.parametrize("content, what", [
    (gzip.compress(b'{"id": "x"}\n', mtime=0), "a gzip file"),  # the same bytes (and test id) in every process
    (b"\x00\x01\x02 binary \xff\xfe" * 50, "a file"),
    ("name,size\nfoo,3\nbar,4\n".encode(), "a file"),
], ids=["gzip", "binary", "csv-without-audio"])
def test_a_file_in_no_known_format_is_one_clear_error(tmp_path, content, what):
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    with pytest.raises(SpeechlabError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert f"{what} in no format pytest-speechlab reads" in message
    assert "jsonl (" in message and "csv (" in message and "speechlab_register_dataset_formats" in message


def test_a_csv_without_an_audio_column_says_which_names_it_takes(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("name,sentence\nfoo,hello\n")
    with pytest.raises(SpeechlabError, match=r"data.csv line 1: the header names no audio column \(one of \['audio'"):
        load_dataset(path)


def test_bad_csv_rows_are_line_errors_and_the_good_rows_load(tmp_path):
    copy_audio(tmp_path)
    path = tmp_path / "data.csv"
    path.write_text("audio,text,kind\n" + f"{FIVE[0]['audio']},\"{FIVE[0]['text']}\",speech\n"
                    + "missing.wav,hello,speech\n" + f"{FIVE[1]['audio']},\"a, quoted, text\"\n"
                    + f"{FIVE[2]['audio']},,speech\n" + f"{FIVE[3]['audio']},,nonspeech\n")
    dataset = load_dataset(path)
    assert [u.text for u in dataset.utterances] == [FIVE[0]["text"], ""]
    assert [u.kind for u in dataset.utterances] == ["speech", "nonspeech"]
    assert [e.source.rsplit("/", 1)[-1] for e in dataset.errors] == ["data.csv line 3", "data.csv line 4", "data.csv line 5"]
    assert "not found" in dataset.errors[0].message and "2 columns, the header has 3" in dataset.errors[1].message


def test_nemo_offsets_read_segments_of_one_recording_each_cached_apart(tmp_path):
    """Two segments of one file (NeMo's offset + duration): each decoded on its own samples, and the
    inference cache keeps them apart (the segment is part of the key)."""
    import numpy as np
    import soundfile as sf

    from test_workers import PLUGIN as LENGTH_PLUGIN, TEXTS

    rate = 16000
    tone = lambda s: 0.1 * np.sin(2 * np.pi * 220 * np.arange(int(s * rate)) / rate).astype(np.float32)  # noqa: E731
    sf.write(tmp_path / "long.wav", np.concatenate([tone(1.0), tone(1.5), tone(2.0)]), rate)
    manifest = tmp_path / "segments.json"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in [
        {"audio_filepath": "long.wav", "offset": 0.0, "duration": 1.0, "text": TEXTS["1.00"], "id": "a"},
        {"audio_filepath": "long.wav", "offset": 1.0, "duration": 1.5, "text": TEXTS["1.50"], "id": "b"},
        {"audio_filepath": "long.wav", "offset": 2.5, "text": TEXTS["2.00"], "id": "c"},  # to the end
        {"audio_filepath": "long.wav", "offset": 9.0, "duration": 1.0, "text": "x", "id": "late"},
        {"audio_filepath": "long.wav", "offset": "soon", "text": "x", "id": "bad"},
    ]))
    dataset = load_dataset(manifest)
    assert [u.offset for u in dataset.utterances] == [0.0, 1.0, 2.5, 9.0]
    assert "'offset' must be a number of seconds" in dataset.errors[0].message
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.speechlab.models.length-x]\nmodel = "length/asr"\n')
    db = str(tmp_path / "results.db")
    (first,) = evaluate_models(["length-x"], [str(manifest)], pyproject=pyproject, plugins=[LENGTH_PLUGIN], db=db)
    texts = {u.utterance.id: u.hypothesis for u in first.utterances}
    assert texts == {"a": TEXTS["1.00"], "b": TEXTS["1.50"], "c": TEXTS["2.00"], "late": ""}
    assert first.wer == 0.0 and "past the end of the audio (4.50 s)" in str(first.errors[-1])
    (again,) = evaluate_models(["length-x"], [str(manifest)], pyproject=pyproject, plugins=[LENGTH_PLUGIN], db=db)
    assert again.cached_count == 3 and {u.utterance.id: u.hypothesis for u in again.utterances} == texts

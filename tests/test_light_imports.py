"""Importing the package and loading the pytest plugin pull in no model backend."""
import subprocess
import sys

HEAVY = ("torch", "ctranslate2", "faster_whisper", "transformers", "pocketsphinx", "onnxruntime", "numpy",
         "whisper_normalizer", "jiwer", "soxr", "rich")


def imported_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    return {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}


def test_import_pytest_speechlab_is_light():
    assert not imported_modules("import pytest_speechlab") & set(HEAVY)


def test_plugin_and_model_plugins_import_light():
    code = ("import pytest_speechlab.plugin; from pytest_speechlab import build_registry, make_plugin_manager; "
            "build_registry(make_plugin_manager())")
    assert not imported_modules(code) & set(HEAVY)

"""Root conftest: applies to the suites and the project's tests alike.

Nothing may download from a model hub at run time: every model here loads packaged weights.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["pytester"]

"""``pytest --speechlab-list-models``: what is registered, by whom, and where its weights come from."""
from __future__ import annotations

from ._registry import Registry
from ._summary import format_table


def list_registered(registry: Registry) -> str:
    models = [
        [s.name, s.task, s.backend or "-", s.plugin, s.weights or "-",
         ", ".join(f"{k}={v!r}" for k, v in s.params.items())]
        for s in sorted(registry.models.values(), key=lambda s: s.name)
    ]
    datasets = [[d.name, d.plugin, d.path, d.description] for d in sorted(registry.datasets.values(), key=lambda d: d.name)]
    lines = ["models:"]
    lines += ["  " + line for line in format_table(["name", "task", "backend", "plugin", "weights", "params"], models, 6)]
    if not models:
        lines.append("  (none: install a model plugin, e.g. model_plugins/faster-whisper)")
    lines += ["", "datasets:"]
    lines += ["  " + line for line in format_table(["name", "plugin", "path", "description"], datasets, 4)]
    return "\n".join(lines)

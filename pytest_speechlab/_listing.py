"""``pytest --speechlab-list-models``: what is registered, by whom, and where its weights come from."""
from __future__ import annotations

import textwrap

from ._perturb import describe
from ._registry import Registry
from ._text import format_table, terminal_width


def list_registered(registry: Registry, width: int | None = None) -> str:
    """One table row per model (name, task, backend), its plugin, weights and parameters wrapped
    below it; then the datasets. No line is wider than ``width`` (default: the terminal's)."""
    width = width or terminal_width()
    lines = ["models:"]
    specs = sorted(registry.models.values(), key=lambda s: s.name)
    table = format_table(["name", "task", "backend"], [[s.name, s.task, s.backend or "-"] for s in specs], 3,
                         width=width - 2)
    lines += ["  " + line for line in table[:2]]
    for spec, line in zip(specs, table[2:]):
        lines.append("  " + line)
        params = ", ".join(f"{k}={v!r}" for k, v in spec.params.items())
        for label, text in (("plugin", spec.plugin), ("weights", spec.weights), ("params", params)):
            if text:
                lines += textwrap.wrap(f"{label}: {text}", width=max(width, 40), initial_indent="      ",
                                       subsequent_indent="        ")
    if not specs:
        lines.append("  (none: install a model plugin, e.g. model_plugins/faster-whisper)")
    lines += ["", "datasets:"]
    for d in sorted(registry.datasets.values(), key=lambda d: d.name):
        lines.append(f"  {d.name}  ({d.plugin})")
        lines += textwrap.wrap(d.description or "", width=max(width, 40), initial_indent="      ",
                               subsequent_indent="      ")
        lines += textwrap.wrap(f"path: {d.path}", width=max(width, 40), initial_indent="      ",
                               subsequent_indent="        ")
    lines += ["", "perturbations:"]
    lines += textwrap.wrap("after a dataset, +kind:param=value,... (e.g. speechlab/speech+noise:snr=10); the "
                           "defaults:", width=max(width, 40), initial_indent="  ", subsequent_indent="  ")
    for kind, params, description in describe():
        lines += textwrap.wrap(f"{kind}:{params}  {description}" if params else f"{kind}  {description}",
                               width=max(width, 40), initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)

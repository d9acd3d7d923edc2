"""The registry of models and datasets that plugins provide, and the plugin manager that fills it."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy

from . import _builtin, _hookspecs
from ._dataset import DatasetFormat, display_path
from ._tables import nearest
from ._types import SpeechlabError

TASKS = ("asr", "tts", "chat", "embedding")


class SpeechlabPluginWarning(UserWarning):
    """A model plugin failed to import or to register; the other plugins still work."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    load: Callable[[dict], Any]
    backend: str = ""
    weights: str = ""
    params: dict = field(default_factory=dict)
    description: str = ""
    plugin: str = ""
    base: str = ""  # for a variant: the model it was declared from
    service: bool = False  # a client of a running service (the latency suite runs on it)

    def variant(self, name: str, params: dict, source: str) -> ModelSpec:
        """A named copy with some parameters changed: decode settings are part of the identity."""
        return dataclasses.replace(
            self,
            name=name,
            params={**self.params, **params},
            description=f"variant of {self.name} ({source})",
            base=self.base or self.name,
        )


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: str
    description: str = ""
    plugin: str = ""
    kind: str = "speech set"  # or "TTS text set", "chat prompt set" (SET_KINDS)


SET_KINDS = ("speech set", "TTS text set", "chat prompt set")  # what a registered set holds


@dataclass
class Registry:
    models: dict[str, ModelSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    formats: list[DatasetFormat] = field(default_factory=list)  # from plugins; the built-in ones come after
    sinks: list[tuple[str, Any]] = field(default_factory=list)  # (plugin, speechlab_write_results implementation)
    features: list[type] = field(default_factory=list)  # from speechlab_register_features (pytest_speechlab.Feature classes)
    # variants declared in the configuration whose base model's plugin is not installed: name -> why
    unavailable: dict[str, str] = field(default_factory=dict)

    def model(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            if name in self.unavailable:
                raise SpeechlabError(self.unavailable[name]) from None
            known = ", ".join(sorted(self.models)) or "none (is a model plugin installed?)"
            raise SpeechlabError(
                f"unknown model {name!r}; registered models: {known}. "
                "Run `pytest --speechlab-list-models` to see them."
            ) from None

    def add_variants(self, variants: dict[str, dict], source: str) -> list[str]:
        """Declare ``[tool.speechlab.models.NAME]`` tables: ``model = BASE`` plus parameters. A base
        close to a registered name is a typo (an error); a variant of a model like none registered
        is left out and returned, to be warned about (its plugin may not be installed here)."""
        absent = []
        for name, table in variants.items():
            table = dict(table)
            base = table.pop("model", None)
            where = f"{source}: [tool.speechlab.models.{name}]"
            if not isinstance(base, str):
                raise SpeechlabError(f"{where} needs model = \"<registered model>\"")
            if name in self.models:
                raise SpeechlabError(f"{where}: {name!r} is already a model of plugin {self.models[name].plugin!r}; "
                                     "a variant needs a name of its own")
            if base not in self.models:
                hint = nearest(base, self.models)
                if hint:
                    raise SpeechlabError(f"{where}: model {base!r} is not registered{hint}")
                absent.append(f"{where}: model {base!r} is not registered (is its plugin installed?); "
                              f"the variant {name!r} is not available")
                self.unavailable[name] = absent[-1]  # said when the variant is selected, not before
                continue
            self.models[name] = self.model(base).variant(name, table, source)
        return absent


def _local_plugin_name(plugin: object) -> str | None:
    """conftest files by path (there can be several), other modules by name, objects by id."""
    module = getattr(plugin, "__name__", None) or ""
    if module == "conftest" or module.endswith(".conftest"):
        return display_path(plugin.__file__)
    return module or None


def make_plugin_manager(extra_plugins: Iterable[object] = ()) -> pluggy.PluginManager:
    """Load built-in plugins, then every ``speechlab`` entry point. A broken plugin warns and is skipped."""
    pm = pluggy.PluginManager(_hookspecs.PROJECT_NAME)
    pm.add_hookspecs(_hookspecs)
    pm.register(_builtin, name="pytest-speechlab (built-in)")
    for ep in importlib.metadata.entry_points(group=_hookspecs.PROJECT_NAME):
        dist = getattr(ep.dist, "name", None) or "?"
        label = dist if not pm.has_plugin(dist) else f"{dist}:{ep.name}"
        if pm.has_plugin(label) or pm.is_blocked(label):
            continue
        try:
            pm.register(ep.load(), name=label)
        except Exception as exc:  # noqa: BLE001 - any failure in third-party code
            warnings.warn(
                SpeechlabPluginWarning(
                    f"speechlab plugin {ep.name!r} ({ep.value}, from distribution {dist}) "
                    f"failed to load and was skipped: {type(exc).__name__}: {exc}"
                ),
                stacklevel=2,
            )
    for plugin in extra_plugins:
        if not pm.is_registered(plugin):
            name = _local_plugin_name(plugin)
            try:
                pm.register(plugin, name=name)
            except pluggy.PluginValidationError as exc:  # this project's own code: a usage error, said plainly
                raise SpeechlabError(f"{name}: a speechlab hook does not match its specification: "
                                     + " ".join(str(exc).split())) from None
    return pm


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call each plugin's registration hooks separately so that one failure does not hide the rest."""
    registry = Registry()
    registry.sinks = [(impl.plugin_name, impl.function) for impl in pm.hook.speechlab_write_results.get_hookimpls()]
    for impl in pm.hook.speechlab_register_features.get_hookimpls():
        def register(feature, label=impl.plugin_name):
            name = getattr(feature, "name", None)
            if not isinstance(feature, type) or not isinstance(name, str) or not name.isidentifier():
                raise SpeechlabError(f"plugin {label!r}: a feature is a class (pytest_speechlab.Feature) whose name is "
                                     f"an identifier, got {feature!r}")
            registry.features.append(feature)

        impl.function(register=register)
    duplicates: list[str] = []

    def call_each(hook_name: str, make_register: Callable[[str], Callable]) -> None:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            label = impl.plugin_name
            try:
                impl.function(register=make_register(label))
            except Exception as exc:  # noqa: BLE001
                warnings.warn(
                    SpeechlabPluginWarning(
                        f"speechlab plugin {label!r} raised in {hook_name} and was skipped: "
                        f"{type(exc).__name__}: {exc}"
                    ),
                    stacklevel=2,
                )

    def model_register(label: str) -> Callable:
        def register(name, *, task, load, backend="", weights="", params=None, description="", service=False):
            if task not in TASKS:
                raise SpeechlabError(f"model {name!r}: unknown task {task!r} (known: {TASKS})")
            if not callable(load):
                raise SpeechlabError(f"model {name!r}: load must be callable")
            if not isinstance(name, str) or not name.strip():
                raise SpeechlabError(f"model name must be a non-empty string, got {name!r}")
            if name in registry.models:
                # Results are recorded by name: two models under one name would mix their history.
                duplicates.append(f"model {name!r} is registered by both plugin {registry.models[name].plugin!r} "
                                  f"and plugin {label!r}")
                return
            registry.models[name] = ModelSpec(
                name, task, load, backend, weights, dict(params or {}), description, label, service=bool(service)
            )

        return register

    def dataset_register(label: str) -> Callable:
        def register(name, *, path, description="", kind="speech set"):
            if kind not in SET_KINDS:
                raise SpeechlabError(f"dataset {name!r}: kind {kind!r} is not one of {', '.join(SET_KINDS)}")
            registry.datasets.setdefault(name, DatasetSpec(name, str(path), description, label, kind))

        return register

    def format_register(label: str) -> Callable:
        def register(name, *, detect, load, description=""):
            if not callable(detect) or not callable(load):
                raise SpeechlabError(f"dataset format {name!r}: detect and load must be callable")
            registry.formats.append(DatasetFormat(str(name), detect, load, f"{description} (plugin {label})".strip()))

        return register

    call_each("speechlab_register_models", model_register)
    call_each("speechlab_register_datasets", dataset_register)
    call_each("speechlab_register_dataset_formats", format_register)
    if duplicates:
        raise SpeechlabError("; ".join(duplicates) + ". Uninstall one of them, or override a model with a "
                             "variant under a new name ([tool.speechlab.models.NEW-NAME] model = \"...\")")
    return registry

"""The package layout is the pipeline: each module imports only modules of its own layer or of the
layers below it (selection -> tasks -> execute -> judge -> record -> the composing engine -> the
command line and the pytest plugin), and no function-local import of the package hides a cycle."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_speechlab"

LAYERS = [  # bottom first; a module may import its own layer and those before it
    ("foundation", ["_types", "_text", "_tables", "_audio", "_weights", "_machine", "_progress", "_hookspecs",
                    "_longform", "longmel"]),
    ("selection", ["_corpora", "_dataset", "_registry", "_builtin", "_perturb"]),
    ("metrics", ["metrics"]),
    ("tasks", ["tasks"]),
    ("execute", ["engine.runner", "engine.cache", "engine.executors", "engine.ray_executor"]),
    ("judge", ["grading", "gate_report", "compare", "crossruntime", "batching", "_assertions", "robustness", "metamorphic",
               "properties"]),
    ("record", ["sinks"]),
    ("settings", ["_config", "_listing"]),
    ("features", ["engine.features"]),
    ("engine", ["engine.frontend", "engine.pipeline", "engine.api", "engine"]),
    ("viewer", ["view"]),
    ("front ends", ["cli", "plugin", "ct2whisper"]),
    ("public API", [""]),
]


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix and module.startswith(prefix + ".")):
                if len(prefix) > best:
                    best, rank = len(prefix), i
    return rank


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        yield ".".join(parts), is_package, path


def imports(module: str, is_package: bool, path: Path):
    """(imported module inside the package, line, whether inside a function) of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if is_package else module.split(".")[:-1]
    functions = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names = [target] if node.module else [".".join([*base, a.name]) for a in node.names]
            for name in names:
                yield name.strip("."), node.lineno, id(node) in functions


def test_no_module_imports_a_later_layer():
    upward = []
    for module, is_package, path in modules():
        for target, line, _ in imports(module, is_package, path):
            if target and layer_of(target) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) line {line} imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "\n".join(upward)


def test_every_module_has_a_layer():
    """A new module is placed in a layer on purpose: one that is not listed fails here."""
    unlisted = [m for m, _, _ in modules() if layer_of(m) is None]
    assert not unlisted, f"modules in no layer of LAYERS: {unlisted}"


def test_an_unlisted_module_is_caught():
    assert layer_of("a_module_nobody_listed") is None
    assert layer_of("") == len(LAYERS) - 1 and layer_of("engine.pipeline") is not None


def test_no_function_local_import_of_the_package():
    """Inside functions only heavy third-party modules are imported (numpy, jiwer, SQLAlchemy...,
    so that ``pytest --help`` and collection stay light); the package's own modules are imported at
    the top, so no local import can be hiding a cycle."""
    local = [f"{module} line {line} imports {target}" for module, is_package, path in modules()
             for target, line, inside in imports(module, is_package, path) if inside]
    assert not local, "\n".join(local)


def test_the_package_imports_without_a_cycle():
    graph = {module: {t for t, _, _ in imports(module, pkg, path) if t != module}
             for module, pkg, path in modules()}
    # a package's __init__ re-exports its children: the edge parent -> child is expected, not a cycle
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if not node or target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, target]))
            if target in graph and not state.get(target):
                visit(target, [*trail, node])
        state[node] = 2

    for module in graph:
        if not state.get(module):
            visit(module, [])


def test_every_package_and_data_folder_is_in_the_wheel():
    """pyproject.toml lists the packages by hand (fixtures and suites are mapped in from elsewhere): a
    new subpackage or data folder left out of it is missing from the wheel (as engine.features was)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(("pytest_speechlab", *p.relative_to(PACKAGE).parts)).rstrip(".")
               for p in [PACKAGE, *PACKAGE.rglob("*")] if p.is_dir() and p.name != "__pycache__"
               and any(f.is_file() and f.suffix != ".pyc" for f in p.iterdir())}
    assert on_disk - listed == set(), f"in pytest_speechlab/ but not in [tool.setuptools] packages: {on_disk - listed}"

"""The package layout is the pipeline: each module imports only modules of its own layer or of the
layers below it (selection -> tasks -> execute -> judge -> record -> the composing engine -> the
command line and the pytest plugin), and no function-local import of the package hides a cycle."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_speechlab"

LAYERS = [  # bottom first; a module may import its own layer and those before it
    ("foundation", ["_types", "_text", "_tables", "_audio", "_weights", "_machine", "_progress", "_hookspecs"]),
    ("selection", ["_dataset", "_registry", "_builtin"]),
    ("metrics", ["metrics"]),
    ("tasks", ["tasks"]),
    ("execute", ["engine.runner", "engine.cache", "engine.executors"]),
    ("judge", ["grading", "compare", "crossruntime", "_assertions"]),
    ("record", ["sinks"]),
    ("settings", ["_config", "_listing"]),
    ("engine", ["engine.pipeline", "engine"]),
    ("front ends", ["cli", "plugin", "ct2whisper"]),
    ("public API", [""]),
]


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + ".") or prefix == "":
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
    assert all(layer_of(m) is not None for m, _, _ in modules())


@pytest.mark.parametrize("module,is_package,path", [m for m in modules()], ids=[m[0] or "__init__" for m in modules()])
def test_function_local_imports_of_the_package_are_not_needed_at_module_level(module, is_package, path):
    """An import of the package inside a function is only there to keep something light (a heavy
    sub-module) or because it would be a cycle; cycles are not allowed, so every function-local
    import of the package must be importable at the top: it would not form a cycle."""
    local = {t for t, _, inside in imports(module, is_package, path) if inside and t}
    top = {t for t, _, inside in imports(module, is_package, path) if not inside and t}
    # a function-local import of a module that imports this one back (directly) would be a cycle
    back = []
    for target in sorted(local - top):
        for other, other_pkg, other_path in modules():
            if other == target and any(t == module or t.startswith(module + ".") and module
                                       for t, _, inside in imports(other, other_pkg, other_path) if not inside):
                back.append(f"{module} imports {target} inside a function, and {target} imports {module}: a cycle")
    assert not back, "\n".join(back)

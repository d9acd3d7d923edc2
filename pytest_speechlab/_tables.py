"""Configuration tables checked for names and types: a typo or a wrong type is one clear error that
names the key and the nearest valid one, never a TypeError later in the run."""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Iterable

from ._types import SpeechlabError


def nearest(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a known name is close to ``name``, else ''."""
    match = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown_key(where: str, key: str, known: Iterable[str]) -> SpeechlabError:
    known = sorted(known)
    return SpeechlabError(f"{where}: unknown key {key!r}{nearest(key, known)}; known: {', '.join(known)}")


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def check_value(value: Any, expected: Any, where: str) -> Any:
    """``value`` if it has the type of ``expected`` (a default value, or a type), else a SpeechlabError."""
    kind = expected if isinstance(expected, type) else type(expected)
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        tuple: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        list: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        dict: lambda v: isinstance(v, dict),
    }.get(kind, lambda v: True)
    if not ok(value):
        wanted = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                  tuple: "a list of strings", list: "a list of strings", dict: "a table"}.get(kind, kind.__name__)
        raise SpeechlabError(f"{where} must be {wanted}, got {_type_name(value)} {value!r}")
    if kind is float:
        return float(value)
    if kind is tuple:
        return tuple(value)
    return value


def checked(cls, table: Any, where: str, types: dict[str, Any] | None = None) -> dict:
    """The entries of ``table`` for dataclass ``cls``, each checked against its field's default
    (or ``types[name]`` for fields whose default does not say, such as optional ones)."""
    if not isinstance(table, dict):
        raise SpeechlabError(f"{where} must be a table, got {_type_name(table)} {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in table.items():
        if key not in fields:
            raise unknown_key(where, key, fields)
        field = fields[key]
        if types and key in types:
            expected = types[key]
        elif field.default is not dataclasses.MISSING and field.default is not None:
            expected = field.default
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            expected = field.default_factory()  # type: ignore[misc]
        else:
            expected = object
        out[key] = value if expected is object else check_value(value, expected, f"{where}.{key}")
    return out

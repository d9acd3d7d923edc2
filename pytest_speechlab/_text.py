"""Untrusted text made safe for where it goes: storage (no NUL, no lone surrogates), the terminal
(no control characters), anything printed or stored (no credentials), bounded size.

Manifest fields, file names, ids, model output and service responses all come from outside; every
sink passes them through one of these functions.
"""
from __future__ import annotations

import re
from typing import Any

# C0 controls except tab and newline, DEL, C1 controls, and the bidirectional overrides that can
# make a terminal line read differently from what it holds.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@")

MAX_TEXT_CHARS = 100_000  # model output kept for scoring, storage and display


def _escape(match: re.Match) -> str:
    ch = match.group()
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def terminal(text: object, one_line: bool = False) -> str:
    """Control characters shown as escapes (``\\x1b``), so outside text cannot drive the terminal."""
    pattern = _CONTROL_ONE_LINE if one_line else _CONTROL
    return pattern.sub(_escape, unicode_safe(str(text)))


def unicode_safe(text: str) -> str:
    """Lone UTF-16 surrogates (valid in JSON, invalid in UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def storable(value: Any) -> Any:
    """A value any database and any UTF-8 file accept: strings without NUL or lone surrogates,
    recursively through lists and dicts."""
    if isinstance(value, str):
        return unicode_safe(value).replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def redact(text: object) -> str:
    """Passwords in URLs (``postgresql://user:secret@host``) replaced by ``***``."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))


def redact_args(args: list[str]) -> list[str]:
    return [redact(a) for a in args]


def bounded(text: str, limit: int = MAX_TEXT_CHARS) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and the original length when it was cut (else 0)."""
    return (text, 0) if len(text) <= limit else (text[:limit], len(text))

"""Untrusted text made safe for where it goes: storage (no NUL, no lone surrogates), the terminal
(no control characters), anything printed or stored (no credentials), bounded size.

Manifest fields, file names, ids, model output and service responses all come from outside; every
sink passes them through one of these functions.
"""
from __future__ import annotations

import html
import re
import shutil
from typing import Any

# C0 controls except tab and newline, DEL, C1 controls, and the bidirectional overrides that can
# make a terminal line read differently from what it holds.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@")
# key=value credentials: URL query parameters (?password=...), libpq keywords, messages quoting them
_KEYED = re.compile(r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|sslpassword)\s*=\s*)"
                    r"(?P<quote>['\"]?)(?P<value>[^\s&;'\",)]+)")

MAX_TEXT_CHARS = 100_000  # model output kept for scoring, storage and display


def _escape(match: re.Match) -> str:
    ch = match.group()
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def terminal(text: object, one_line: bool = False) -> str:
    """Control characters shown as escapes (``\\x1b``), so outside text cannot drive the terminal."""
    pattern = _CONTROL_ONE_LINE if one_line else _CONTROL
    return pattern.sub(_escape, unicode_safe(str(text)))


def esc(value: object) -> str:
    """Untrusted text in HTML, in any element or attribute: quotes included; control characters shown."""
    return html.escape(terminal(value), quote=True)


def md(value: object) -> str:
    """Untrusted text in a Markdown table cell: HTML escaped, Markdown punctuation backslashed,
    one line, control characters shown as escapes, so it can neither add markup nor break the table."""
    text = terminal(html.escape(str(value), quote=False).replace("\r", " ").replace("\n", " "), one_line=True)
    return re.sub(r"([\\`*_\[\]#!|~])", r"\\\1", text)


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
    """Passwords in URLs (``postgresql://user:secret@host``) and key=value credentials
    (``?password=secret``, ``token=secret``) replaced by ``***``."""
    text = _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    return _KEYED.sub(lambda m: f"{m['key']}{m['quote']}***", text)


def redact_args(args: list[str]) -> list[str]:
    return [redact(a) for a in args]


def bounded(text: str, limit: int = MAX_TEXT_CHARS) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and the original length when it was cut (else 0)."""
    return (text, 0) if len(text) <= limit else (text[:limit], len(text))


def terminal_width(default: int = 80) -> int:
    return shutil.get_terminal_size((default, 24)).columns


def _clip(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(width - 1, 1)] + "…"


def format_table(header: list[str], rows: list[list[str]], text_columns: int = 2, width: int | None = None) -> list[str]:
    """Plain aligned columns: the first ``text_columns`` left-aligned, the (numeric) rest right.

    With ``width``, a table wider than that is split into several tables of the same rows, each
    repeating the first ``text_columns`` (the row's identity), and over-long text cells are clipped
    with an ellipsis, so that no line is wider than the terminal."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    if width is None or sum(widths) + 2 * (len(widths) - 1) <= width:
        return _table(header, rows, widths, text_columns)
    keys = min(text_columns, 2)
    room = width - 2 * keys - 20  # identity columns leave at least 20 columns for figures
    if sum(widths[:keys]) > room:  # clip them, each to its share
        for i in range(keys):
            widths[i] = min(widths[i], max(room // keys, 12))
    header = [_clip(c, widths[i]) if i < keys else c for i, c in enumerate(header)]
    rows = [[_clip(c, widths[i]) if i < keys else c for i, c in enumerate(r)] for r in rows]
    fixed = sum(widths[:keys]) + 2 * keys
    chunks, current, used = [], [], fixed
    for i in range(keys, len(header)):
        w = min(widths[i], max(width - fixed, 8))
        if current and used + w > width:
            chunks.append(current)
            current, used = [], fixed
        current.append(i)
        used += w + 2
    if current:
        chunks.append(current)
    lines: list[str] = []
    for n, chunk in enumerate(chunks):
        columns = list(range(keys)) + chunk
        sub_widths = [widths[i] if i < keys else min(widths[i], max(width - fixed, 8)) for i in columns]
        sub_rows = [[_clip(r[i], sub_widths[j]) for j, i in enumerate(columns)] for r in rows]
        if n:
            lines.append("")
        lines += _table([header[i] for i in columns], sub_rows, sub_widths, min(text_columns, len(columns)))
    return lines


def _table(header: list[str], rows: list[list[str]], widths: list[int], text_columns: int) -> list[str]:
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    ).rstrip()
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]

"""Diagnostics: coded problems with a source position, and the one place they are rendered."""

from __future__ import annotations

import bisect
import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file; lines and columns are 1-based, the end column is exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec: what is wrong (message), where (span) and what to do (hint)."""

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: Severity = Severity.ERROR
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.col, self.code)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        data["notes"] = list(self.notes)
        return data


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sort by file and position; identical duplicates (same code, place and message) collapse."""
    unique = {(d.sort_key(), d.message): d for d in diagnostics}
    return [unique[k] for k in sorted(unique)]


def without_consequences(
    diagnostics: Iterable[Diagnostic], causes: Iterable[Diagnostic]
) -> list[Diagnostic]:
    """Drop the diagnostics about a value that already has an error among `causes`.

    A check on `profile: ${UNSET}` (read as '') or on `port: !!int x` (read as null) reports a
    consequence of the first error, not a second problem to fix.
    """
    failed = sorted(
        ((c.span.file, c.span.line, c.span.col), c.span)
        for c in causes
        if c.span is not None and c.is_error
    )
    if not failed:
        return list(diagnostics)
    starts = [start for start, _ in failed]
    kept = []
    for d in diagnostics:
        span = d.span
        if span is not None:
            # only causes that start inside the diagnostic's span can lie within it
            i = bisect.bisect_left(starts, (span.file, span.line, span.col))
            end = (span.file, span.end_line, span.end_col)
            inside = False
            while i < len(failed) and starts[i] <= end:
                if _contains(span, failed[i][1]):
                    inside = True
                    break
                i += 1
            if inside:
                continue
        kept.append(d)
    return kept


def _contains(outer: Span | None, inner: Span) -> bool:
    return (
        outer is not None
        and outer.file == inner.file
        and (outer.line, outer.col) <= (inner.line, inner.col)
        and (inner.end_line, inner.end_col) <= (outer.end_line, outer.end_col)
    )


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def one_of(candidates: Sequence[str], limit: int = 8) -> str:
    """`expected one of 'a', 'b'`, shortened past `limit` (never to hide just one)."""
    if len(candidates) == limit + 1:
        limit += 1
    shown = ", ".join(f"'{c}'" for c in candidates[:limit])
    more = f" (and {len(candidates) - limit} more)" if len(candidates) > limit else ""
    return f"expected one of {shown}{more}" if candidates else "none are defined"


SHOWN_LINE = 120
"""Characters of a source line shown around the caret; a longer line is cut with '…'."""


def render_text(diagnostics: Sequence[Diagnostic], sources: dict[str, str]) -> str:
    """Render as `FILE:LINE:COL: error[CODE] message`, the offending line, a caret and the hint.

    Each source is split into lines once, however many diagnostics point into it, so rendering
    costs time linear in the file's size plus the number of diagnostics.
    """
    lines = {name: text.split("\n") for name, text in sources.items()}
    blocks = [_render_one(d, lines) for d in diagnostics]
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if diagnostics:
        parts = []
        if errors:
            parts.append(f"{errors} error{'s' if errors != 1 else ''}")
        if warnings:
            parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
        blocks.append(" and ".join(parts) + " found")
    return "\n".join(blocks)


def _render_one(d: Diagnostic, sources: dict[str, list[str]]) -> str:
    head = f"{d.severity.value}[{d.code}] {d.message}"
    if d.span is None:
        lines = [head]
        if d.hint:
            lines.append(f"  = hint: {d.hint}")
    else:
        s = d.span
        lines = [f"{s.file}:{s.line}:{s.col}: {head}"]
        source_lines = sources.get(s.file, [])
        if 0 < s.line <= len(source_lines):
            source_line = source_lines[s.line - 1].rstrip("\r")
            gutter = " " * len(str(s.line))
            end = s.end_col if s.end_line == s.line and s.end_col > s.col else len(source_line) + 1
            width = max(1, min(end, len(source_line) + 1) - s.col)
            shown, col, width = _window(source_line, s.col, width)
            caret = " " * (col - 1) + "^" * width
            lines.append(f"   {s.line} | {shown}")
            lines.append(f"   {gutter} | {caret}" + (f" {d.hint}" if d.hint else ""))
        elif d.hint:
            lines.append(f"  = hint: {d.hint}")
    lines.extend(f"  = note: {note}" for note in d.notes)
    return "\n".join(lines)


def _window(line: str, col: int, width: int) -> tuple[str, int, int]:
    """At most SHOWN_LINE characters of a long line around the caret: (text, column, width)."""
    if len(line) <= SHOWN_LINE:
        return line, col, width
    start = max(0, min(col - 1 - SHOWN_LINE // 3, len(line) - SHOWN_LINE))
    text = line[start : start + SHOWN_LINE]
    prefix = "…" if start else ""
    suffix = "…" if start + SHOWN_LINE < len(line) else ""
    col = col - start + len(prefix)
    return prefix + text + suffix, col, max(1, min(width, SHOWN_LINE - (col - 1 - len(prefix))))


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2)

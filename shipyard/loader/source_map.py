"""YAML text -> plain Python data plus a source map from key paths to positions."""

from __future__ import annotations

import bisect
import gc
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from shipyard.diagnostics import Diagnostic, Span

try:  # the C parser is several times faster and keeps the same marks
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml is part of the locked PyYAML wheel
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path = tuple[str | int, ...]

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a spec may have (real specs stay under 10)."""
MAX_EXPANDED = 20_000
"""Mappings and lists built again through aliases: bounds an alias bomb ("billion laughs") to
well under a second; a spec that reuses an anchor even a thousand times stays far below it."""
MAX_CHARACTER_ERRORS = 10

# Characters YAML refuses (C0 controls but tab and line ends, DEL, C1 controls, U+FFFE/FFFF,
# surrogates), and the line breaks YAML counts but editors do not show (NEL, U+2028, U+2029):
# with those, every line number after them would differ from what an editor shows.
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff\ud800-\udfff]"
)
_INVISIBLE_BREAKS = {"\x85": "NEL", "\u2028": "LINE SEPARATOR", "\u2029": "PARAGRAPH SEPARATOR"}


@dataclass
class SourceMap:
    """Positions of every key and value, addressed by the path of keys and list indexes."""

    file: str
    values: dict[Path, Span] = field(default_factory=dict)
    keys: dict[Path, Span] = field(default_factory=dict)

    def value_span(self, path: Path) -> Span | None:
        return self.values.get(self._resolve(path))

    def key_span(self, path: Path) -> Span | None:
        resolved = self._resolve(path)
        return self.keys.get(resolved) or self.values.get(resolved)

    def nearest_span(self, path: Path) -> Span | None:
        """The span of the path, or of its closest ancestor that exists in the file."""
        resolved = self._resolve(path)
        while resolved:
            if resolved in self.values:
                return self.values[resolved]
            resolved = resolved[:-1]
        return self.values.get(())

    def _resolve(self, path: Path) -> Path:
        """Walk the path, skipping elements the file does not have (pydantic union tags)."""
        resolved: Path = ()
        for part in path:
            candidate = (*resolved, part)
            if candidate in self.values:
                resolved = candidate
        return resolved


@dataclass
class ParsedYaml:
    data: Any
    source_map: SourceMap
    diagnostics: list[Diagnostic]


def parse_yaml(text: str, file: str) -> ParsedYaml:
    """Parse one YAML document; syntax errors and duplicate keys become diagnostics."""
    # parsing allocates objects for every node, key, value and span; the cyclic collector would
    # walk the growing tree many times over (half the time on a large spec) and find no garbage
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(text, file)
    finally:
        if collecting:
            gc.enable()


def _parse(text: str, file: str) -> ParsedYaml:
    source_map = SourceMap(file)
    characters = list(_character_errors(text, file))
    if characters:
        return ParsedYaml(None, source_map, characters)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(None, source_map, [_syntax_error(exc, file, text)])
    except yaml.YAMLError as exc:
        return ParsedYaml(None, source_map, [Diagnostic("E001", f"invalid YAML: {exc}")])
    except RecursionError:  # the composer itself is recursive: nesting deeper than it goes
        return ParsedYaml(None, source_map, [_too_deep(Span(file, 1, 1, 1, 1))])
    if node is None:  # an empty file, or only comments
        return ParsedYaml(None, source_map, [_empty(file)])
    builder = _Builder(source_map)
    try:
        data = builder.build(node, ())
    except _AliasBomb as exc:
        return ParsedYaml(None, source_map, [exc.diagnostic])
    return ParsedYaml(data, source_map, builder.diagnostics)


def _empty(file: str) -> Diagnostic:
    return Diagnostic(
        "E103",
        "the spec is empty: it must be a mapping with `project:` and sections",
        Span(file, 1, 1, 1, 2),
        "start the file with `project: <name>`",
    )


def _character_errors(text: str, file: str) -> Iterator[Diagnostic]:
    """Characters YAML refuses, or that would shift line numbers, at the line and column an
    editor shows (lines counted by newline only)."""
    starts: list[int] | None = None
    for count, match in enumerate(_FORBIDDEN.finditer(text)):
        if count == MAX_CHARACTER_ERRORS:
            return
        if starts is None:
            starts = [0] + [m.end() for m in re.finditer("\n", text)]
        line = bisect.bisect_right(starts, match.start())
        col = match.start() - starts[line - 1] + 1
        char = match.group()
        code = f"U+{ord(char):04X}"
        if char in _INVISIBLE_BREAKS:
            message = (
                f"invalid character {code} ({_INVISIBLE_BREAKS[char]}): YAML reads it as a new "
                "line that editors do not show, so every later line number would be off"
            )
            hint = "replace it with a newline, or delete it"
        else:
            name = unicodedata.name(char, "a control character" if ord(char) < 0xA0 else "")
            message = (
                f"invalid character {code} ({name or 'a non-character'}): YAML does not allow it"
            )
            hint = "delete it; editors often do not show it (e.g. a paste from a terminal)"
        yield Diagnostic("E001", message, Span(file, line, col, line, col + 1), hint)


def _span(file: str, node: yaml.Node) -> Span:
    start, end = node.start_mark, node.end_mark
    return Span(file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def _syntax_error(exc: yaml.MarkedYAMLError, file: str, text: str) -> Diagnostic:
    lines = text.splitlines()
    mark, opened = exc.problem_mark or exc.context_mark, exc.context_mark
    hint = "check the indentation and quoting of this line"
    if mark is not None and mark.line >= len(lines) and opened is not None:
        # the parser ran to the end of the file: point at where the unclosed thing started
        mark = opened
        hint = "this is never closed: check for a missing ']', '}' or quote"
    elif mark is not None and opened is not None and opened.line != mark.line:
        hint = _unclosed_bracket(lines, opened) or hint
    if mark is not None and (quote := _runaway_quote(text, file, mark)) is not None:
        return quote
    span = (
        Span(file, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2) if mark else None
    )
    problem = exc.problem or "invalid YAML"
    at = lines[mark.line][mark.column : mark.column + 1] if mark and mark.line < len(lines) else ""
    # libyaml and the pure-Python parser word this differently; the character itself does not lie
    if at == "\t" or "tab" in problem:
        return Diagnostic(
            "E001",
            "invalid YAML: a tab character is used for indentation",
            span,
            "YAML does not allow tabs for indentation; use spaces",
        )
    if "nesting depth" in problem and span is not None:  # PyYAML's own limit, met before ours
        return _too_deep(span)
    context = f" ({exc.context})" if exc.context else ""
    return Diagnostic("E001", f"invalid YAML: {problem}{context}", span, hint)


def _runaway_quote(text: str, file: str, mark: yaml.Mark) -> Diagnostic | None:
    """A quote left open runs on to the next quote, lines later, and the parser fails there:
    point at where the string opened."""
    found: yaml.ScalarToken | None = None
    try:
        for token in yaml.scan(text, Loader=_Loader):
            if token.start_mark.line > mark.line:
                break
            if isinstance(token, yaml.ScalarToken) and token.style in ("'", '"'):
                found = token
    except yaml.YAMLError:
        pass
    if found is None or found.end_mark.line != mark.line or found.start_mark.line == mark.line:
        return None
    start = found.start_mark
    quote = found.style
    return Diagnostic(
        "E001",
        f"invalid YAML: the {quote} opened on line {start.line + 1} is not closed on that line, "
        f"so the string runs on to line {mark.line + 1}",
        Span(file, start.line + 1, start.column + 1, start.line + 1, start.column + 2),
        f"add the closing {quote} on line {start.line + 1}",
    )


def _unclosed_bracket(lines: list[str], opened: yaml.Mark) -> str | None:
    """A hint for a `[` or `{` that runs into the next lines because it is never closed."""
    bracket = lines[opened.line][opened.column : opened.column + 1]
    closer = {"[": "]", "{": "}"}.get(bracket)
    if closer is None:
        return None
    return f"the '{bracket}' on line {opened.line + 1} is not closed: add the missing '{closer}'"


_STR_TAG = "tag:yaml.org,2002:str"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_BOOLS = ("true", "false")
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _AliasBomb(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _too_deep(span: Span) -> Diagnostic:
    return Diagnostic(
        "E001",
        f"invalid YAML: nested deeper than {MAX_DEPTH} levels",
        span,
        "a spec's sections are a few levels deep: check for a runaway `[` or `{`",
    )


class _Builder:
    """Builds plain data from a composed node tree while recording positions."""

    def __init__(self, source_map: SourceMap) -> None:
        self.source_map = source_map
        self.constructor = yaml.constructor.SafeConstructor()
        self.diagnostics: list[Diagnostic] = []
        self._entries: dict[int, list[tuple[yaml.Node, yaml.Node, bool]]] = {}
        self._seen: set[int] = set()  # nodes built once: a second time is through an alias
        self._open: set[int] = set()  # collections being built: meeting one again is a cycle
        self._expanded = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        span = _span(self.source_map.file, node)
        self.source_map.values[path] = span
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        key = id(node)
        if key in self._open:
            self.diagnostics.append(
                Diagnostic(
                    "E001",
                    "invalid YAML: an alias refers to the collection it is in",
                    span,
                    "a value cannot contain itself: copy what you need instead of the alias",
                )
            )
            return None
        if len(path) > MAX_DEPTH:
            self.diagnostics.append(_too_deep(span))
            return None
        if key in self._seen:
            self._expanded += 1
            if self._expanded > MAX_EXPANDED:
                raise _AliasBomb(
                    Diagnostic(
                        "E001",
                        f"invalid YAML: aliases expand to more than {MAX_EXPANDED:,} mappings and "
                        "lists (an alias bomb?)",
                        span,
                        "a spec has no use for aliases of aliases many levels deep: write the "
                        "values out, or use fewer aliases",
                    )
                )
        self._seen.add(key)
        self._open.add(key)
        try:
            if isinstance(node, yaml.MappingNode):
                return dict(self._mapping_items(node, path))
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node)
        finally:
            self._open.discard(key)

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == _STR_TAG:  # most values: skip the constructor's tag dispatch
            return node.value
        plain = not getattr(node, "style", None)  # libyaml gives '' for plain, PyYAML None
        if node.tag == _BOOL_TAG and plain and node.value.lower() not in _BOOLS:
            # YAML 1.1 reads yes/no/on/off/y/n as booleans; keep the word as written (YAML 1.2
            # does): where the spec wants a string (a category, a label, a name) it stays the
            # user's word, and where it wants a boolean the spec models read the word as one
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            problem = exc.problem
        except (
            ValueError,
            TypeError,
        ) as exc:  # an explicit tag on a value it does not fit: !!int x
            problem = f"{node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]} ({exc})"
        self.diagnostics.append(
            Diagnostic(
                "E001",
                f"invalid YAML value: {problem}",
                _span(self.source_map.file, node),
                "write a plain value; specs use no YAML tags such as `!!int` or `!ref`",
            )
        )
        return None

    def _mapping_items(self, node: yaml.MappingNode, path: Path) -> Iterator[tuple[Any, Any]]:
        seen: dict[str, tuple[yaml.Node, bool]] = {}
        for key_node, value_node, explicit in self._flattened(node):
            key_span = _span(self.source_map.file, key_node)
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool):
                self.diagnostics.append(
                    Diagnostic(
                        "E001",
                        "mapping keys must be plain scalars",
                        key_span,
                        "write a plain name as the key, e.g. `orders:`",
                    )
                )
                continue
            key = str(key) if not isinstance(key, str) else key
            first = seen.get(key)
            if first is not None and first[1]:
                # written twice in this mapping; a key merged in with `<<` may be overridden
                self.diagnostics.append(
                    Diagnostic(
                        "E002",
                        f"duplicate key '{key}' (first defined on line "
                        f"{first[0].start_mark.line + 1})",
                        key_span,
                        "remove one of the two entries or merge them",
                    )
                )
                continue
            seen[key] = (key_node, explicit)
            self.source_map.keys[(*path, key)] = key_span
            yield key, self.build(value_node, (*path, key))

    def _flattened(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """Entries with `<<` merge keys resolved, each marked explicit (written here) or merged.

        Merged entries come first so explicit ones override them. Cached per node: an anchored
        mapping used again through an alias is already flattened the second time.
        """
        cached = self._entries.get(id(node))
        if cached is not None:
            return cached
        if not any(key.tag == _MERGE_TAG for key, _ in node.value):
            entries = [(key, value, True) for key, value in node.value]
        else:
            explicit = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
            try:
                self.constructor.flatten_mapping(node)
            except yaml.constructor.ConstructorError as exc:
                self.diagnostics.append(
                    Diagnostic(
                        "E001",
                        f"invalid merge key: {exc.problem}",
                        _span(self.source_map.file, node),
                        "`<<:` takes an alias of a mapping (`<<: *base`) or a list of them",
                    )
                )
            entries = [(key, value, id(key) in explicit) for key, value in node.value]
        self._entries[id(node)] = entries
        return entries

"""YAML text -> plain Python data plus a source map from key paths to positions."""

from __future__ import annotations

import gc
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
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(None, source_map, [_syntax_error(exc, file, text)])
    except yaml.YAMLError as exc:
        return ParsedYaml(None, source_map, [Diagnostic("E001", f"invalid YAML: {exc}")])
    if node is None:
        return ParsedYaml({}, source_map, [])
    builder = _Builder(source_map)
    return ParsedYaml(builder.build(node, ()), source_map, builder.diagnostics)


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
    context = f" ({exc.context})" if exc.context else ""
    return Diagnostic("E001", f"invalid YAML: {problem}{context}", span, hint)


def _unclosed_bracket(lines: list[str], opened: yaml.Mark) -> str | None:
    """A hint for a `[` or `{` that runs into the next lines because it is never closed."""
    bracket = lines[opened.line][opened.column : opened.column + 1]
    closer = {"[": "]", "{": "}"}.get(bracket)
    if closer is None:
        return None
    return f"the '{bracket}' on line {opened.line + 1} is not closed: add the missing '{closer}'"


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Builder:
    """Builds plain data from a composed node tree while recording positions."""

    def __init__(self, source_map: SourceMap) -> None:
        self.source_map = source_map
        self.constructor = yaml.constructor.SafeConstructor()
        self.diagnostics: list[Diagnostic] = []
        self._entries: dict[int, list[tuple[yaml.Node, yaml.Node, bool]]] = {}

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.source_map.values[path] = _span(self.source_map.file, node)
        if isinstance(node, yaml.MappingNode):
            return dict(self._mapping_items(node, path))
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == _STR_TAG:  # most values: skip the constructor's tag dispatch
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

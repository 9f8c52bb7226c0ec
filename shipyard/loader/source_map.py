"""YAML text -> plain Python data plus a source map from key paths to positions."""

from __future__ import annotations

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
    source_map = SourceMap(file)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(None, source_map, [_syntax_error(exc, file)])
    except yaml.YAMLError as exc:
        return ParsedYaml(None, source_map, [Diagnostic("E001", f"invalid YAML: {exc}")])
    if node is None:
        return ParsedYaml({}, source_map, [])
    builder = _Builder(source_map)
    data = builder.build(node, ())
    return ParsedYaml(data, source_map, builder.diagnostics)


def _span(file: str, node: yaml.Node) -> Span:
    start, end = node.start_mark, node.end_mark
    return Span(file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    span = (
        Span(file, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2) if mark else None
    )
    hint = "check the indentation and quoting of this line"
    if "found character '\\t'" in problem:
        hint = "YAML does not allow tabs for indentation; use spaces"
    return Diagnostic("E001", f"invalid YAML: {problem}{context}", span, hint)


class _Builder:
    """Builds plain data from a composed node tree while recording positions."""

    def __init__(self, source_map: SourceMap) -> None:
        self.source_map = source_map
        self.constructor = yaml.constructor.SafeConstructor()
        self.diagnostics: list[Diagnostic] = []

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.source_map.values[path] = _span(self.source_map.file, node)
        if isinstance(node, yaml.MappingNode):
            return dict(self._mapping_items(node, path))
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.diagnostics.append(
                Diagnostic(
                    "E001", f"invalid YAML value: {exc.problem}", _span(self.source_map.file, node)
                )
            )
            return None

    def _mapping_items(self, node: yaml.MappingNode, path: Path) -> Iterator[tuple[Any, Any]]:
        try:
            self.constructor.flatten_mapping(node)  # resolves `<<` merge keys
        except yaml.constructor.ConstructorError as exc:
            self.diagnostics.append(
                Diagnostic(
                    "E001", f"invalid merge key: {exc.problem}", _span(self.source_map.file, node)
                )
            )
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.build(key_node, (*path, "\0key"))
            key_span = _span(self.source_map.file, key_node)
            if not isinstance(key, str | int | float | bool) or key is None:
                self.diagnostics.append(
                    Diagnostic("E001", "mapping keys must be plain scalars", key_span)
                )
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.diagnostics.append(
                    Diagnostic(
                        "E002",
                        f"duplicate key '{key}' (first defined on line {first})",
                        key_span,
                        "remove one of the two entries or merge them",
                    )
                )
                continue
            seen[key] = key_node
            self.source_map.keys[(*path, key)] = key_span
            yield key, self.build(value_node, (*path, key))
        self.source_map.values.pop((*path, "\0key"), None)

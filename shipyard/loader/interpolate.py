"""`${VAR}` and `${VAR:-default}` interpolation; `${secret:NAME}` references stay unresolved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipyard.diagnostics import Diagnostic, Span
from shipyard.loader.source_map import Path, SourceMap

# `$${` escapes a literal `${`; a reference is `${NAME}`, `${NAME:-default}` or `${secret:NAME}`;
# a `${` with no closing brace matches last, with no body.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
SECRET_REFERENCE = re.compile(r"\$\{secret:([^}]*)\}")


def interpolate(
    data: Any, env: Mapping[str, str], source_map: SourceMap
) -> tuple[Any, list[Diagnostic], set[str]]:
    """Substitute environment variables in every string; collect the secret names referenced."""
    diagnostics: list[Diagnostic] = []
    secrets: set[str] = set()

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return _substitute(value, path)
        return value

    def _substitute(text: str, path: Path) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "$${"  # kept until the end, then unescaped
            body = match.group(1)
            if body is None or "${" in body:
                diagnostics.append(
                    Diagnostic(
                        "E012",
                        "unclosed '${'"
                        if body is None
                        else f"a reference inside a reference '${{{body}}}'",
                        _reference_span(source_map.value_span(path), text, match),
                        "close it with '}' as in ${NAME}; references do not nest, and $${ "
                        "writes a literal '${'",
                    )
                )
                return match.group(0)
            if body.startswith("secret:"):
                name = body.removeprefix("secret:")
                if not SECRET_NAME.fullmatch(name):
                    diagnostics.append(
                        Diagnostic(
                            "E011",
                            f"invalid secret reference '${{{body}}}'",
                            _reference_span(source_map.value_span(path), text, match),
                            "secret names use lowercase letters, digits and dashes, "
                            "e.g. ${secret:slack-url}",
                        )
                    )
                else:
                    secrets.add(name)
                return match.group(0)  # resolved only at run time
            name, sep, default = body.partition(":-")
            if not _ENV_NAME.fullmatch(name):
                diagnostics.append(
                    Diagnostic(
                        "E012",
                        f"invalid variable reference '${{{body}}}'",
                        _reference_span(source_map.value_span(path), text, match),
                        "write ${NAME} or ${NAME:-default}; use $${ for a literal '${'",
                    )
                )
                return match.group(0)
            if name in env:
                return env[name]
            if sep:
                return default
            diagnostics.append(
                Diagnostic(
                    "E010",
                    f"environment variable '{name}' is not set",
                    _reference_span(source_map.value_span(path), text, match),
                    f"export {name}=... or give a default: ${{{name}:-value}}",
                )
            )
            return ""

        result = _REFERENCE.sub(replace, text)
        return result.replace("$${", "${")

    return walk(data, ()), diagnostics, secrets


def _reference_span(span: Span | None, text: str, match: re.Match[str]) -> Span | None:
    """Where one reference is written inside a one-line value; else the whole value."""
    if span is None or span.line != span.end_line:
        return span
    quotes = span.end_col - span.col - len(text)
    if quotes not in (0, 2):  # escapes or line folding: offsets inside the value are unknown
        return span
    col = span.col + quotes // 2 + match.start()
    return Span(span.file, span.line, col, span.line, col + len(match.group(0)))

"""`${VAR}` and `${VAR:-default}` interpolation; `${secret:NAME}` references stay unresolved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipyard.diagnostics import Diagnostic
from shipyard.loader.source_map import Path, SourceMap

# `$${` escapes a literal `${`; a reference is `${NAME}`, `${NAME:-default}` or `${secret:NAME}`.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
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
            if body.startswith("secret:"):
                name = body.removeprefix("secret:")
                if not SECRET_NAME.fullmatch(name):
                    diagnostics.append(
                        Diagnostic(
                            "E011",
                            f"invalid secret reference '${{{body}}}'",
                            source_map.value_span(path),
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
                        source_map.value_span(path),
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
                    source_map.value_span(path),
                    f"export {name}=... or give a default: ${{{name}:-value}}",
                )
            )
            return ""

        result = _REFERENCE.sub(replace, text)
        return result.replace("$${", "${")

    return walk(data, ()), diagnostics, secrets

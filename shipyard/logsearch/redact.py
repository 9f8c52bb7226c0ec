"""Credentials out of every line a log search shows: secret values, URL passwords, auth headers.

Masked request fields are masked where they are logged (`shipyard/serving/masking.py`); this is
the second line of defence for what still looks like a credential, whoever logged it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from shipyard.secrets import redact_url

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter secret values are not searched for: hiding every "1" would hide the log."""
_SENSITIVE_KEYS = re.compile(
    r"^(authorization|x-api-key|api[-_]?key|password|passwd|secret|token|access[-_]?token)$",
    re.IGNORECASE,
)
_URL_WITH_PASSWORD = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:'\"]*:[^\s/@'\"]+@[^\s'\"]+")
_HEADER = re.compile(
    r"(?P<name>authorization|x-api-key)(?P<sep>['\"]?\s*[:=]\s*['\"]?)"
    r"(?:(?P<scheme>bearer|basic|token)\s+)?(?P<value>[^\s'\",;}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)


class Redactor:
    """Replaces credentials in text and in (nested) line fields with `***`."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        values = {v for v in secret_values if len(v) >= MIN_SECRET_LENGTH}
        # longest first: a secret that contains another is hidden whole
        ordered = sorted(values, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(MASK, text)
        if "://" in text:
            text = _URL_WITH_PASSWORD.sub(_url, text)
        text = _HEADER.sub(_header, text)
        return _BEARER.sub(lambda m: f"{m.group('scheme')} {MASK}", text)

    def value(self, value: Any) -> Any:
        """A field value with every string in it redacted (dicts and lists walked)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                key: MASK if _SENSITIVE_KEYS.match(str(key)) and value[key] else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


def _url(match: re.Match[str]) -> str:
    try:
        return redact_url(match.group(0))
    except ValueError:  # not a URL urllib can split (a bad port): hide all but its scheme
        return match.group(0).split("://", 1)[0] + "://" + MASK


def _header(match: re.Match[str]) -> str:
    scheme = f"{match.group('scheme')} " if match.group("scheme") else ""
    return f"{match.group('name')}{match.group('sep')}{scheme}{MASK}"

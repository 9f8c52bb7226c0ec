"""Hiding sensitive fields (emails, tokens, card numbers) in logged requests and responses."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

MASK = "***"
_CACHE_SIZE = 4096
_LAYOUTS = 256
"""Distinct row layouts (key tuples) remembered by mask_flat."""


class Masker:
    """Replaces the values of fields whose names match fnmatch patterns, at any depth."""

    def __init__(self, patterns: Sequence[str]) -> None:
        """Compile the patterns.

        Args:
            patterns: fnmatch-style patterns on field names, case-insensitive, e.g. "email",
                "*_token" or "card_*".
        """
        self.patterns = tuple(patterns)
        combined = "|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in self.patterns)
        self._regex = re.compile(combined, re.IGNORECASE) if self.patterns else None
        self._cache: dict[str, bool] = {}
        self._layouts: dict[tuple[str, ...], tuple[str, ...]] = {}

    def masks(self, field: str) -> bool:
        """Whether the field's value is hidden."""
        hit = self._cache.get(field)
        if hit is None:
            hit = self._regex is not None and self._regex.match(field) is not None
            # Field names come from requests: cap the cache so clients cannot grow it forever.
            if len(self._cache) < _CACHE_SIZE:
                self._cache[field] = hit
        return hit

    def mask(self, value: Any) -> Any:
        """A copy of dicts, lists and tuples with masked fields' values replaced by MASK.

        Other values are returned as they are; with no patterns, so is everything.
        """
        if self._regex is None:
            return value
        return self._mask(value)

    def mask_flat(self, row: dict[str, Any]) -> dict[str, Any]:
        """`mask` for a flat row (scalar values), cheap on the request path: which keys to
        hide is decided once per key layout, and a row with nothing to hide is not copied."""
        if self._regex is None:
            return row
        keys = tuple(row)
        hidden = self._layouts.get(keys)
        if hidden is None:
            hidden = tuple(key for key in keys if self.masks(key))
            if len(self._layouts) < _LAYOUTS:
                self._layouts[keys] = hidden
        if not hidden:
            return row
        out = dict(row)
        for key in hidden:
            out[key] = MASK
        return out

    def _mask(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: MASK if isinstance(key, str) and self.masks(key) else self._mask(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._mask(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self._mask(item) for item in value)
        return value

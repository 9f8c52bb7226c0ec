"""Online feature lookups for serving: `get_online_features(service, entity_keys)`."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.compiler import FeatureRepoStep
from shipyard.errors import ShipyardError


class MissingEntity(ShipyardError):
    """An entity key has no features in the online store and the service says to fail."""


class OnlineFeatures:
    """A warm FeatureStore for one repository; lookups reuse it (opening one costs ~0.5 s)."""

    def __init__(self, repo: FeatureRepoStep) -> None:
        from shipyard.features.repo import open_store

        self.repo = repo
        self.store = open_store(repo)
        self._services: dict[str, Any] = {}
        self._plans = {s.name: s for s in repo.services}
        self._lock = threading.Lock()

    def _service(self, name: str) -> Any:
        with self._lock:
            if name not in self._services:
                names = [s.name for s in self.repo.services]
                if name not in names:
                    from shipyard.diagnostics import did_you_mean

                    raise ShipyardError(
                        f"feature service '{name}' is not defined",
                        hint=did_you_mean(name, names) or f"defined: {', '.join(names)}",
                        resource=self.repo.id,
                    )
                self._services[name] = self.store.get_feature_service(name)
            return self._services[name]

    def get(self, service: str, entity_keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One dict of features per entity row; unknown keys follow the service's `on_missing`."""
        plan = (
            self.repo.service(service)
            if any(s.name == service for s in self.repo.services)
            else None
        )
        feature_service = self._service(service)
        try:
            response = self.store.get_online_features(
                features=feature_service, entity_rows=[dict(k) for k in entity_keys]
            ).to_dict()
        except Exception as exc:  # Redis down, bad key types: say which store
            raise ShipyardError(
                f"online lookup in feature service '{service}' failed: {exc}",
                hint="check the online store is running and the entity key names and types",
                resource=self.repo.id,
            ) from exc
        rows = [
            dict(zip(response, values, strict=True))
            for values in zip(*response.values(), strict=True)
        ]
        if plan is not None and plan.on_missing == "error":
            for key, row in zip(entity_keys, rows, strict=True):
                if all(row.get(f) is None for f in plan.features):
                    raise MissingEntity(
                        f"no online features for {dict(key)} in '{service}'",
                        hint="materialize the views (`shipyard run materialize-features <view>`) "
                        "or check the key",
                        resource=self.repo.id,
                    )
        return rows


_CACHE: dict[int, OnlineFeatures] = {}


def get_online_features(
    service: str, entity_keys: Sequence[Mapping[str, Any]], repo: FeatureRepoStep
) -> list[dict[str, Any]]:
    """Look up a feature service's features for entity keys, e.g. [{"customer_id": 42}].

    The warm store is kept per repository object (plans are frozen, so identity is enough).
    """
    client = _CACHE.get(id(repo))
    if client is None or client.repo is not repo:
        client = _CACHE[id(repo)] = OnlineFeatures(repo)
    return client.get(service, entity_keys)

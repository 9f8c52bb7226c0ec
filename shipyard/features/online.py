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
                self._services[name] = self._registered(name)
            return self._services[name]

    def _registered(self, name: str) -> Any:
        """The feature service in Feast's registry, or why this environment has none: its
        features were never applied and materialized here (a new environment, a promotion)."""
        from feast.errors import FeatureServiceNotFoundException

        try:
            return self.store.get_feature_service(name)
        except FeatureServiceNotFoundException:
            views = ", ".join(v.name for v in self.repo.views) or "<view>"
            raise ShipyardError(
                f"feature service '{name}' is not in the feature registry "
                f"{self.repo.registry.path}: its features were never applied and materialized "
                "in this environment",
                hint=f"run `shipyard run materialize-features <view>` here for each view "
                f"({views}); it applies the repository, then loads the online store",
                resource=self.repo.id,
            ) from None

    def check(self, service: str) -> None:
        """Raise now, not at the first request, when `service` cannot be looked up here."""
        self._service(service)

    def get(self, service: str, entity_keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One dict of features per entity row; unknown keys follow the service's `on_missing`."""
        return self.lookup(service, entity_keys)[0]

    def lookup(
        self, service: str, entity_keys: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """`get`, and per row the features the online store has no value for (the entity is
        unknown to a view, or its row is older than the view's ttl): those come back null.

        Raises:
            MissingEntity: A row has none of its features and the service says
                `on_missing: error`.
            ShipyardError: The lookup failed (the store is down, the keys do not fit).
        """
        plan = (
            self.repo.service(service)
            if any(s.name == service for s in self.repo.services)
            else None
        )
        feature_service = self._service(service)
        try:
            response = self.store.get_online_features(
                features=feature_service, entity_rows=[dict(k) for k in entity_keys]
            )
            values = response.to_dict()
        except Exception as exc:  # Redis down, bad key types: say which store
            raise ShipyardError(
                f"online lookup in feature service '{service}' failed: {exc}",
                hint="check the online store is running and the entity key names and types",
                resource=self.repo.id,
            ) from exc
        rows = [dict(zip(values, row, strict=True)) for row in zip(*values.values(), strict=True)]
        features = plan.features if plan is not None else []
        missing = _missing(response, features, rows)
        if plan is not None and plan.on_missing == "error":
            for key, absent in zip(entity_keys, missing, strict=True):
                if features and len(absent) == len(features):
                    raise MissingEntity(
                        f"no online features for {dict(key)} in '{service}'",
                        hint="materialize the views (`shipyard run materialize-features <view>`) "
                        "or check the key",
                        resource=self.repo.id,
                    )
        return rows, missing


def _missing(response: Any, features: Sequence[str], rows: list[dict[str, Any]]) -> list[list[str]]:
    """Per row, the features the store did not have. Read from Feast's per-value statuses;
    a store that reports none is taken at its values (null = missing)."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    # a row that is there with a null value (NULL_VALUE) is not missing
    absent = (FieldStatus.NOT_FOUND, FieldStatus.OUTSIDE_MAX_AGE)
    proto = getattr(response, "proto", None)
    statuses: dict[str, Sequence[int]] = {}
    if proto is not None:
        for name, vector in zip(proto.metadata.feature_names.val, proto.results, strict=False):
            statuses[name] = vector.statuses
    out: list[list[str]] = [[] for _ in rows]
    for feature in features:
        status = statuses.get(feature)
        if status is not None and len(status) == len(rows):
            for index, code in enumerate(status):
                if code in absent:
                    out[index].append(feature)
        else:
            for index, row in enumerate(rows):
                if row.get(feature) is None:
                    out[index].append(feature)
    return out


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

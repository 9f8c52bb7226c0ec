"""The serving engine of one worker: models, features, auth, limits, routing and logs.

The BentoML service in `bentos/service.py` is a thin HTTP adapter over this class. Runtime
changes (a new bundle, new routing) build new objects off the request path and swap one
reference, so requests in flight finish on what they started with and none is dropped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any

from shipyard.compiler.services import RoutingPlan
from shipyard.errors import ShipyardError
from shipyard.serving.auth import Authenticator, authenticator_for
from shipyard.serving.checks import Failure, RequestChecker, rejection
from shipyard.serving.config import ServiceConfig, read_config
from shipyard.serving.control import ControlState, ControlStore, resolve_bundle
from shipyard.serving.crypto import LogKeyError, service_cipher
from shipyard.serving.masking import Masker
from shipyard.serving.models import ModelSet
from shipyard.serving.predlog import BATCH, PredictionLog
from shipyard.serving.ratelimit import RateLimiter
from shipyard.serving.router import Router, UnknownVariant
from shipyard.serving.startup import stage
from shipyard.serving.telemetry import configure_logging, service_metrics

log = logging.getLogger("shipyard.serving")
WATCH_INTERVAL = 0.5
FEEDBACK_WAIT = 1.0
"""Seconds a feedback for a request id not found yet waits for it to be logged: a prediction
answered by a replica on another machine reaches the shared log within a fraction of that."""
_BATCH_ROW_ID = re.compile(r"^(.+)/(\d+)$")


class RequestError(Exception):
    """A request the service refuses: becomes an HTTP status with a message (and, for some,
    a `detail` list naming each problem's location)."""

    def __init__(
        self, status: int, error: str, message: str, detail: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.detail = detail
        self.variant: str | None = None
        """The variant whose model failed (a 500), so metrics count the error against it."""
        self.model_version: str | None = None


class ReloadRefused(Exception):
    """A new bundle that a running service cannot take without a restart."""


def _row_values(columns: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values of `columns`, as a tuple, in one C call when there are several."""
    if len(columns) > 1:
        return itemgetter(*columns)
    if columns:
        only = columns[0]
        return lambda row: (row[only],)
    return lambda row: ()


def _policies(config: ServiceConfig) -> tuple[Authenticator, RateLimiter, Masker]:
    """Who may call, how often, and what never reaches a log: all from the built config."""
    step = config.step
    limiter = RateLimiter(
        per_key=step.rate_limit.per_key,
        global_limit=step.rate_limit.global_limit,
        storage_uri=step.rate_limit.storage,
        namespace=f"shipyard:{step.project}:{step.service}",
        key_limits={
            name: api_key.rate_limit
            for name, api_key in (step.auth.api_keys if step.auth else {}).items()
            if api_key.rate_limit
        },
    )
    return authenticator_for(step), limiter, Masker(step.mask)


def _prediction_log(config: ServiceConfig) -> PredictionLog:
    """The service's log, spooling to the state folder: a worker that dies loses no row."""
    step = config.step
    spool = Path(step.state_dir) / "serving" / step.service / "spool"
    cipher = service_cipher(step, use_prefect=False)  # a missing or wrong key fails the start
    return PredictionLog(step.log_database, step.service, spool_dir=spool, cipher=cipher)


def _log_settings(config: ServiceConfig) -> tuple[Any, ...]:
    """What the prediction log is made of: a reload that changes it starts a new one."""
    step = config.step
    encryption = step.log_encryption
    return (step.log_database, encryption, tuple(step.mask) if encryption else None)


def routing_for(config: ServiceConfig, routing: RoutingPlan | None) -> RoutingPlan:
    """`routing` if it still fits the bundle's variants, else the routing the spec compiles to,
    for the variants the bundle serves (a deploy that drops a candidate must not keep sending
    it traffic)."""
    served = [v.name for v in config.variants]
    if routing is not None:
        try:
            Router(routing, served)
            return routing
        except (ValueError, UnknownVariant) as exc:
            log.warning("routing of %s reset to the spec's: %s", config.step.service, exc)
    return config.step.routing.for_variants(served)


def _without_typeguard() -> None:
    """Feast decorates hundreds of functions with typeguard's `@typechecked`, which re-parses
    and recompiles each one's source when Feast is imported: seconds of a worker's start, for
    checks typeguard itself leaves out of production (`python -O` makes it a no-op). Make it
    that no-op here, in a serving worker, before Feast is first imported."""
    import sys

    if "feast" in sys.modules:
        return
    try:
        import typeguard
    except ImportError:
        return

    def typechecked(target: Any = None, **_options: Any) -> Any:
        return (lambda inner: inner) if target is None else target

    typeguard.typechecked = typechecked


class ServiceEngine:
    """Everything one worker needs to answer /predict, /feedback and the admin API."""

    def __init__(self, bundle: Path, watch: bool = True) -> None:
        configure_logging()
        started = read_config(bundle)
        self.store = ControlStore(started.step.control_database)
        # A worker that starts (or restarts after a crash) serves what the control state says
        # now, not the Bento it was started from: every worker of every replica serves alike.
        # Its models, keys, limits, masks and log come from that Bento's service.json.
        current = self._current_bundle(bundle, started)
        self.config = started if current == bundle else read_config(current)
        self.bundle = bundle = current
        step = self.config.step
        self.service = step.service
        self.metrics = service_metrics(step.project, step.id, json.dumps(self.config.input_buckets))
        self.models = ModelSet(self.config, bundle, self.metrics)
        self.features: Any = None
        if step.feature_service is not None and self.config.feature_repo is not None:
            stage(f"opening the online feature store ({step.feature_service})")
            _without_typeguard()
            from shipyard.features.online import OnlineFeatures

            self.features = OnlineFeatures(self.config.feature_repo)
            self.features.check(step.feature_service)  # a worker without them does not start
        self.auth, self.limiter, self.masker = _policies(self.config)
        self.checker = RequestChecker(step.request_checks)
        self.log = _prediction_log(self.config)
        self.reload_error: str | None = None
        self.router = Router(routing_for(self.config, None), list(self.models.variants))
        self.revision = 0
        self.check_control()  # the state's routing and revision (or why it cannot be applied)
        self._stop = threading.Event()
        if watch:
            threading.Thread(target=self._watch, name="shipyard-control", daemon=True).start()

    # -- requests ---------------------------------------------------------------------------

    def features_for(
        self, rows: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[list[str]] | None]:
        """Model inputs per request row (the rows themselves, or their online features), and
        with a feature service, per row the features the online store did not have."""
        if self.features is None:
            return rows, None
        from shipyard.features.online import MissingEntity

        step = self.config.step
        assert step.feature_service is not None
        try:
            found, missing = self.features.lookup(step.feature_service, rows)
        except MissingEntity as exc:
            raise RequestError(404, "unknown_entity", f"{exc}; {exc.hint}") from None
        except ShipyardError as exc:  # the online store is down or refuses the keys
            log.error("online feature lookup failed: %s", exc)
            raise RequestError(
                503, "feature_store_unavailable", f"{exc}; try again shortly"
            ) from None
        for feature, count in Counter(f for absent in missing for f in absent).items():
            self.metrics.missing(feature, count)
        inputs = [{**features, **row} for row, features in zip(rows, found, strict=True)]
        return inputs, missing

    def check_rows(self, rows: list[dict[str, Any]]) -> list[Failure]:
        """The rows' failed expectations, counted; raises the 400 when they refuse the request.

        Raises:
            RequestError: `request_checks: reject`, and a row fails a rule the training data
                holds without exception.
        """
        checker = self.checker
        failures = checker.check(rows)
        if not failures:
            return failures
        refusing = checker.refusing(failures)
        action = "rejected" if refusing else "flagged"
        for rule, count in Counter(f.rule for f in failures).items():
            self.metrics.failed(rule.column, rule.rule, action, count)
        if refusing:
            message, detail = rejection(refusing, checker.plan.dataset, self.service)
            raise RequestError(400, "failed_expectations", message, detail)
        return failures

    async def predict(
        self,
        rows: list[dict[str, Any]],
        headers: Mapping[str, str],
        request_id: str,
        forced: str | None = None,
    ) -> list[dict[str, Any]]:
        models, router = self.models, self.router
        step = self.config.step
        if len(rows) > step.max_batch_size:
            raise RequestError(
                413,
                "batch_too_large",
                f"{len(rows)} rows is more than this service accepts in one request "
                f"({step.max_batch_size}); split the batch or raise "
                f"services.{self.service}.batching.max_batch_size",
            )
        failures = self.check_rows(rows) if self.checker.plan.active else None
        inputs, missing = self.features_for(rows)
        sole = router.sole if not forced else None
        tested: list[bool] = []
        try:
            if sole is not None:
                chosen = [sole] * len(rows)
            else:
                assigned = [router.assign(row, headers, forced) for row in rows]
                chosen = [variant for variant, _ in assigned]
                tested = [in_test for _, in_test in assigned]
        except UnknownVariant as exc:
            raise RequestError(400, "unknown_variant", str(exc)) from None
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(chosen):
            groups.setdefault(name, []).append(i)
        results: list[dict[str, Any]] = [{} for _ in rows]
        for name, indexes in groups.items():
            variant = models.variants[name]
            try:
                outputs = await models.submit[name]([inputs[i] for i in indexes])
            except Exception as exc:  # the model failed: a 500 counted against its variant
                log.exception("variant %s (v%s) failed to predict", name, variant.version)
                refused = RequestError(
                    500,
                    "model_error",
                    f"variant '{name}' (model version {variant.version}) failed to predict: "
                    f"{type(exc).__name__}; the service log has the details",
                )
                refused.variant, refused.model_version = name, variant.version
                raise refused from None
            for i, (prediction, score) in zip(indexes, outputs, strict=True):
                results[i] = {
                    "prediction": prediction,
                    "probability": score,
                    "variant": name,
                    "model_version": variant.version,
                }
            scores = [s for _, s in outputs if s is not None]
            self.metrics.predicted(
                name, variant.version, scores or [o for o, _ in outputs if isinstance(o, float)]
            )
        units: list[str | None] | None = None
        if any(tested):  # logged with the prediction: the test's exposure record
            units = [router.unit(row) if t else None for row, t in zip(rows, tested, strict=True)]
            for result, in_test in zip(results, tested, strict=True):
                if in_test:
                    result["experiment"] = router.experiment
        if failures:  # flagged: each row lists the rules it failed
            for failure in failures:
                results[failure.row].setdefault("failed_expectations", []).append(failure.rule.rule)
        if missing is not None:
            for result, absent in zip(results, missing, strict=True):
                if absent:
                    result["missing_features"] = absent
        self.metrics.observed_inputs(inputs, groups)
        if step.log_predictions:
            self._log_predictions(request_id, inputs, results, groups, units)
        return results

    def _log_predictions(
        self,
        request_id: str,
        inputs: list[dict[str, Any]],
        results: list[dict[str, Any]],
        groups: dict[str, list[int]],
        units: list[str | None] | None = None,
    ) -> None:
        """One record per request and variant. A batch is one columnar JSON document (the log
        explodes it into rows when read): a hundred rows cost the writer one small insert.
        Rows in an A/B test also carry the test's name and the caller's unit id."""
        mask = self.masker.mask_flat
        if len(inputs) == 1:
            result = results[0]
            output = {"prediction": result["prediction"], "probability": result["probability"]}
            if units and units[0] is not None:
                output.update(experiment=result["experiment"], unit=units[0])
            self.log.log_prediction(
                request_id, result["variant"], result["model_version"], mask(inputs[0]), output
            )
            return
        columns = list(inputs[0])  # every row of a request has the same fields
        shown = [column for column in columns if not self.masker.masks(column)]
        masked = [column for column in columns if column not in shown]
        values = _row_values(shown)
        for name, indexes in groups.items():
            record: dict[str, Any] = {
                BATCH: 1,
                "columns": columns,
                "rows": (
                    list(map(values, inputs))
                    if len(indexes) == len(inputs)
                    else [values(inputs[i]) for i in indexes]
                ),
            }
            if masked:
                record["masked"] = masked  # named, never valued; rows carry the other columns
            self.log.log_prediction(
                request_id,
                name,
                results[indexes[0]]["model_version"],
                record,
                {
                    BATCH: 1,
                    "row": indexes,
                    "prediction": [results[i]["prediction"] for i in indexes],
                    "probability": [results[i]["probability"] for i in indexes],
                    **(
                        {
                            "experiment": [results[i].get("experiment") for i in indexes],
                            "unit": [units[i] for i in indexes],
                        }
                        if units
                        else {}
                    ),
                },
            )

    async def feedback(
        self, outcome: Any, request_id: str | None, entity: dict[str, Any] | None
    ) -> None:
        """Log an outcome. Every field of the record, at any depth, is masked as the spec says
        (`outcome` and `entity` themselves too, when a pattern names them).

        Raises:
            RequestError: 404 when `request_id` names no prediction of this service.
        """
        if request_id is not None and self.config.step.log_predictions:
            await self._ensure_predicted(request_id)
        record = self.masker.mask({"entity": entity, "outcome": outcome})
        self.log.log_feedback(
            record["outcome"], request_id=request_id, entity=record["entity"] or None
        )
        self.metrics.feedback_received()

    async def _ensure_predicted(self, request_id: str) -> None:
        """Feedback names a prediction this service logged: its request id, or for a row of a
        batch `<request id>/<row>`. A prediction just answered may still be on its way to the
        log (this worker's queue, another worker's spool, another replica's writer), so an id
        found nowhere is looked for again until FEEDBACK_WAIT has passed. When the log cannot
        be read, the feedback is taken unchecked: refusing it would lose the outcome."""
        import anyio

        batch = _BATCH_ROW_ID.match(request_id)
        ids = (request_id, batch.group(1)) if batch else (request_id,)
        predictions = self.log
        deadline = time.monotonic() + FEEDBACK_WAIT
        while True:
            known = await anyio.to_thread.run_sync(lambda: predictions.knows(ids))
            if known is not False:
                return
            if time.monotonic() >= deadline:
                break
            await anyio.sleep(0.1)
        keys = self.config.step.entity_keys
        by_entity = (
            "{" + ", ".join(f'"{key}": ...' for key in keys) + "}" if keys else "its key columns"
        )
        raise RequestError(
            404,
            "unknown_request_id",
            f"no prediction of service '{self.service}' has request id '{request_id}'; send "
            "the `request_id` a /predict response returned (`<request_id>/<row>` for a row of "
            f"a batch), or give the outcome by `entity` ({by_entity})",
        )

    # -- runtime changes ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        state = self.router.state
        return {
            "service": self.service,
            "bento": self.config.bento_tag,
            "bundle": str(self.models.bundle),
            "built_at": self.config.built_at,
            "variants": [
                {
                    "name": v.name,
                    "model": v.registered_name,
                    "version": v.version,
                    "semver": v.semver,
                    "weight": state.weights.get(v.name, 0.0),
                }
                for v in self.models.config.variants
            ],
            "routing": state.model_dump(mode="json", by_alias=True),
            "revision": self.revision,
            "reload_error": self.reload_error,
            "worker": os.getpid(),  # which worker answered: each applies the state on its own
        }

    def routing_info(self) -> dict[str, Any]:
        """GET /admin/routing: the routing in force and the revision it came with."""
        return {
            **self.router.state.model_dump(mode="json", by_alias=True),
            "revision": self.revision,
        }

    def set_routing(
        self, routing: RoutingPlan, actor: str, reason: str, expected_revision: int | None = None
    ) -> ControlState:
        """Change the routing of every worker: compare-and-swap on the revision (the current
        one unless given), audited with the change; then apply it here at once.

        Raises:
            ControlConflict: Another change came first; nothing was applied.
            UnknownVariant, ValueError: The routing does not fit this service's variants.
        """
        Router(routing, list(self.models.variants))  # refuse before writing anything
        state = self.store.change(
            self.service,
            expected_revision=self.revision if expected_revision is None else expected_revision,
            actor=actor,
            action="routing",
            reason=reason,
            routing=routing,
        )
        self._apply(state)
        return state

    def reload(self, bundle: Path) -> None:
        """Load another bundle's models beside the current ones, then switch."""
        config = read_config(bundle)
        if config.request_schema_digest() != self.config.request_schema_digest():
            raise ReloadRefused(
                f"{config.bento_tag} takes different request fields "
                f"({', '.join(f.name for f in config.request_fields)}); a running service "
                f"cannot change its API: restart it with `shipyard serve {self.service} --restart`"
            )
        models = ModelSet(config, bundle, self.metrics)
        auth, limiter, masker = _policies(config)  # revoked keys and new masks apply too
        checker = RequestChecker(config.step.request_checks)
        predictions = self.log
        if _log_settings(config) != _log_settings(self.config):
            try:
                predictions = _prediction_log(config)
            except LogKeyError as exc:  # a key this worker was not started with
                raise ReloadRefused(
                    f"{exc}; restart the service to take new log keys: "
                    f"`shipyard serve {self.service} --restart`"
                ) from exc
        router = Router(routing_for(config, self.router.state), list(models.variants))
        old_log = self.log
        self.auth, self.limiter, self.masker, self.log = auth, limiter, masker, predictions
        self.checker = checker
        self.config, self.models, self.router = config, models, router
        if old_log is not predictions:
            old_log.close()
        log.info(
            "reloaded %s: now serving %s",
            self.service,
            config.bento_tag,
            extra={"fields": {"service": self.service, "bento": config.bento_tag}},
        )

    def _current_bundle(self, bundle: Path, started: ServiceConfig) -> Path:
        """The bundle the control state names, when this worker can serve it (it is on this
        machine and takes the request fields this worker's API was built with); else `bundle`,
        and check_control() says why in `reload_error`."""
        try:
            state = self.store.read(started.step.service)
            if state is None:
                return bundle
            current = resolve_bundle(state, Path(started.step.state_dir))
            if current == bundle:
                return bundle
            config = read_config(current)
        except (ShipyardError, ValueError):  # the store or that Bento is unreadable
            return bundle
        if config.request_schema_digest() != started.request_schema_digest():
            return bundle
        return current

    def check_control(self, force: bool = False) -> None:
        """Apply the control state if its revision moved: a new bundle, new routing, or both."""
        try:
            revision = self.store.revision(self.service)
            if revision == self.revision and not force:
                return
            state = self.store.read(self.service)
        except ShipyardError as exc:  # the store is down: keep serving what works
            self.reload_error = str(exc)
            log.error("control state of %s unreadable: %s", self.service, exc)
            return
        if state is not None:
            self._apply(state)

    def _apply(self, state: ControlState) -> None:
        try:
            bundle = resolve_bundle(state, Path(self.config.step.state_dir))
            if bundle != self.models.bundle:
                self.reload(bundle)
            if state.routing != self.router.state:
                self.router = Router(state.routing, list(self.models.variants))
            self.revision = state.revision
            self.reload_error = None
        except Exception as exc:  # keep serving what works; say why the change was not taken
            self.reload_error = str(exc)
            self.revision = state.revision  # not retried until the next change
            log.error(
                "control revision %s of %s not applied: %s",
                state.revision,
                self.service,
                exc,
                extra={"fields": {"service": self.service}},
            )

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            self.check_control()

    def close(self) -> None:
        self._stop.set()
        self.log.close()
        self.limiter.close()
        self.store.close()

"""A custom training function, referenced from test specs as `support_models:train_logistic`."""

from __future__ import annotations

from typing import Any

import pandas as pd


def train_logistic(x: pd.DataFrame, y: pd.Series, params: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    numeric = x.select_dtypes("number")
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=params.get("C", 1.0), random_state=seed)
    )
    model.fit(numeric, y)
    return _NumericOnly(model, list(numeric.columns))


class _NumericOnly:
    """Uses the numeric columns only: shows that any object with predict works."""

    def __init__(self, model: Any, columns: list[str]) -> None:
        self.model = model
        self.columns = columns
        self.classes_ = model.classes_

    def predict(self, x: pd.DataFrame) -> Any:
        return self.model.predict(x[self.columns])

    def predict_proba(self, x: pd.DataFrame) -> Any:
        return self.model.predict_proba(x[self.columns])


def not_a_model(x: pd.DataFrame, y: pd.Series, params: dict[str, Any], seed: int) -> Any:
    return {"weights": [1, 2, 3]}


FAULT_AT_TRAINING = "SHIPYARD_TEST_TRAIN_FAULT"
"""Set while training: `errors:0.3` (that share of predict calls raise) or `slow:1.3` (each call
takes 1.3 times the base delay). The trained version keeps it."""
FAULTS_LIVE = "SHIPYARD_TEST_FAULTS_LIVE"
"""Set in a service's environment: the versions' faults (and the base delay) apply there only,
so training and its evaluation are never affected."""
BASE_DELAY_SECONDS = 0.008


def train_faulty(x: pd.DataFrame, y: pd.Series, params: dict[str, Any], seed: int) -> Any:
    """`train_logistic`, and a fault the version carries into serving (see FAULT_AT_TRAINING)."""
    import os

    kind, _, amount = os.environ.get(FAULT_AT_TRAINING, "none:0").partition(":")
    return _Faulty(train_logistic(x, y, params, seed), kind, float(amount or 0))


class _Faulty:
    """Every call waits a random 0.5x to 1.5x of BASE_DELAY_SECONDS (times the slowdown), and
    a share of calls raise, when FAULTS_LIVE is set in the process."""

    def __init__(self, model: Any, kind: str, amount: float) -> None:
        self.model = model
        self.kind = kind
        self.amount = amount
        self.classes_ = model.classes_

    def _behave(self) -> None:
        import os
        import random
        import time

        if not os.environ.get(FAULTS_LIVE):
            return
        factor = self.amount if self.kind == "slow" else 1.0
        time.sleep(BASE_DELAY_SECONDS * factor * random.uniform(0.5, 1.5))
        if self.kind == "errors" and random.random() < self.amount:
            raise RuntimeError("injected fault: this version fails a share of its calls")

    def predict(self, x: pd.DataFrame) -> Any:
        self._behave()
        return self.model.predict(x)

    def predict_proba(self, x: pd.DataFrame) -> Any:
        self._behave()
        return self.model.predict_proba(x)

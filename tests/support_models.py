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

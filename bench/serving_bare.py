"""The baseline of bench/serving.py: a minimal BentoML 1.4 service over the same MLflow model.

BentoML defaults throughout (access log, Prometheus metrics, one worker, sync API with one
thread), as in /work/shared/bench/serving/service_bentoml.py; only usage tracking is off.
`bench/serving.py` starts it; by hand (cwd bench/):

    BARE_MODEL_DIR=<bundle>/models/stable BENTOML_HOME=/tmp/bare-home BENTOML_DO_NOT_TRACK=True \
        python -m bentoml serve serving_bare:BareService --host 127.0.0.1 --port 18150

POST /predict {"rows": [{feature: value, ...}, ...]} -> [0|1, ...]
"""

from __future__ import annotations

import os

import bentoml

MODEL_DIR = os.environ.get("BARE_MODEL_DIR", "")


@bentoml.service
class BareService:
    """Score rows with the model in BARE_MODEL_DIR (an MLflow sklearn model folder)."""

    def __init__(self) -> None:
        import mlflow.sklearn

        if not MODEL_DIR:
            raise RuntimeError("set BARE_MODEL_DIR to an MLflow sklearn model folder")
        self.model = mlflow.sklearn.load_model(MODEL_DIR)
        self.columns = list(self.model.feature_names_in_)

    @bentoml.api
    def predict(self, rows: list[dict[str, float]]) -> list[int]:
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=self.columns)
        return [int(p) for p in self.model.predict(frame)]

"""The second baseline of bench/serving.py: a minimal FastAPI app over the same MLflow model.

Adapted from /work/shared/bench/serving/app_fastapi.py: the same shape (a pydantic request
model, a sync `def` endpoint, which FastAPI runs in its threadpool like a sync `@bentoml.api`,
and `GET /readyz`), but it loads the MLflow sklearn model folder that serving_bare.py loads
and takes the same body as the other two targets. Plain `uvicorn` CLI, one worker, uvicorn's
defaults otherwise (access log on, like BentoML's; uvloop and httptools, which uvicorn picks
itself when installed, as BentoML's uvicorn does). `bench/serving.py` starts it; by hand
(cwd bench/):

    FASTAPI_MODEL_DIR=<bundle>/models/stable \
        python -m uvicorn serving_fastapi:app --host 127.0.0.1 --port 18160 --workers 1

POST /predict {"rows": [{feature: value, ...}, ...]} -> [0|1, ...]
"""

from __future__ import annotations

import os

import mlflow.sklearn
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_DIR = os.environ.get("FASTAPI_MODEL_DIR", "")
if not MODEL_DIR:
    raise RuntimeError("set FASTAPI_MODEL_DIR to an MLflow sklearn model folder")
model = mlflow.sklearn.load_model(MODEL_DIR)
columns = list(model.feature_names_in_)

app = FastAPI()


class PredictRequest(BaseModel):
    rows: list[dict[str, float]]


@app.post("/predict")
def predict(req: PredictRequest) -> list[int]:
    frame = pd.DataFrame.from_records(req.rows, columns=columns)
    return [int(p) for p in model.predict(frame)]


@app.get("/readyz")
def readyz() -> dict[str, bool]:
    return {"ok": True}

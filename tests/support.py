"""Shared test helpers: the standard test spec, the repository root, free ports."""

from __future__ import annotations

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
project: test-project
profiles:
  local:
    prefect: {{port: {port}}}
datasets:
  customers:
    path: data/customers.parquet
    key: [customer_id, event_time]
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      signup_date: datetime
      region: {{category: [north, south, east, west]}}
      plan: {{category: [basic, plus, pro]}}
      tenure_months: int
      monthly_charges: float
      support_calls: int
      data_usage_gb: float
      email: str
      churned: bool
    expectations:
      - not_null: [customer_id, plan, churned]
      - between: {{column: monthly_charges, min: 0, max: 500}}
      - regex: {{column: email, pattern: "^[^@]+@[^@]+$"}}
      - row_count: {{min: 10}}
"""

MODEL_SPEC = """
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [region, plan, tenure_months, monthly_charges, support_calls, data_usage_gb]
    estimator:
      class: sklearn.ensemble.HistGradientBoostingClassifier
      params: {{max_iter: 60}}
    search:
      strategy: grid
      space: {{learning_rate: [0.05, 0.2]}}
    metrics: [roc_auc, accuracy, f1, log_loss]
    gate:
      roc_auc: "{threshold}"
      vs_champion: {{metric: roc_auc, min_delta: -0.05}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FEATURE_SPEC = """\
project: feature-test
profiles:
  local:
    prefect: {{port: {port}}}
{profile}
datasets:
  labels:
    path: data/labels.parquet
    timestamp: event_time
    schema: {{customer_id: int, event_time: datetime, churned: bool}}
    expectations: [{{not_null: [customer_id]}}]
  profiles:
    path: data/profiles.parquet
    timestamp: event_time
    schema: {{customer_id: int, event_time: datetime, tenure: int, plan: str}}
    expectations: [{{not_null: [customer_id]}}]
features:
  entities:
    customer: {{join_key: customer_id}}
  views:
    profile: {{entity: customer, source: profiles, ttl: 400d, features: [tenure, plan]}}
  services:
    profile_v1: [profile]
    strict_v1: {{views: [profile], on_missing: error}}
"""

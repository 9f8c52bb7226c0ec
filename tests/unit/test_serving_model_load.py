"""A worker loads a model folder's scikit-learn file itself, as mlflow.sklearn would."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import yaml

from shipyard.serving.models import _load_model, _positive_column


def _folder(tmp_path: Path, kind: str, model: object, **flavor: object) -> Path:
    file = tmp_path / "model.pkl"
    if kind == "cloudpickle":
        import cloudpickle

        file.write_bytes(cloudpickle.dumps(model))
    else:
        file.write_bytes(pickle.dumps(model))
    mlmodel = {
        "flavors": {
            "sklearn": {"pickled_model": "model.pkl", "serialization_format": kind, **flavor}
        },
        "metadata": {"shipyard": {"positive_class": "stayed"}},
    }
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return tmp_path


@pytest.mark.parametrize("kind", ["pickle", "cloudpickle"])
def test_a_pickled_model_loads_without_importing_mlflow(tmp_path: Path, kind: str) -> None:
    had_mlflow = "mlflow" in sys.modules
    loaded = _load_model(_folder(tmp_path, kind, {"weights": [1, 2, 3]}))
    assert loaded == {"weights": [1, 2, 3]}
    assert ("mlflow" in sys.modules) == had_mlflow


def test_the_positive_class_comes_from_the_mlmodel_metadata(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "pickle", None)
    assert _positive_column(folder, ["churned", "stayed"]) == 1
    assert _positive_column(folder, ["stayed", "churned"]) == 0
    assert _positive_column(tmp_path / "nowhere", ["a", "b"]) == 1


def test_a_model_with_bundled_code_goes_through_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    calls: list[str] = []
    fake = types.ModuleType("mlflow.sklearn")

    def load_model(path: str) -> str:
        calls.append(path)
        return "through mlflow"

    fake.load_model = load_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlflow.sklearn", fake)
    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    sys.modules["mlflow"].sklearn = fake  # type: ignore[attr-defined]
    folder = _folder(tmp_path, "pickle", 1, code="code")
    assert _load_model(folder) == "through mlflow" and calls == [str(folder)]
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    assert _load_model(_folder(tmp_path, "pickle", 1)) == "through mlflow"

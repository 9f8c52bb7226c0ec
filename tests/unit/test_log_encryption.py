"""Fields of the prediction and feedback logs encrypted at rest: what reaches the disk, who can
read it back, key rotation, fail-fast key errors, and the rules on `logging.encrypt`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import psql, throwaway_database

from shipyard.compiler import ServiceStep
from shipyard.compiler.services import LogEncryptionPlan
from shipyard.serving.crypto import (
    ENCRYPTED,
    FieldCipher,
    LogKeyError,
    check_keys,
    cipher_for,
    reader_cipher,
)
from shipyard.serving.masking import MASK
from shipyard.serving.predlog import BATCH, LogReader, PredictionLog

from .specs import check, compile_text, replaced

KEY = "k" * 40
NEW_KEY = "n" * 40
EMAIL = "ada@example.com"
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/nowhere"
PLAN = LogEncryptionPlan(fields=["email"], key="${secret:churn-api-log-key}")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'logs.sqlite'}"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log key in the environment, and no Prefect server to ask for it."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("SHIPYARD_SECRET_CHURN_API_LOG_KEY", KEY)


def cipher(*keys: str, masked: tuple[str, ...] = ()) -> FieldCipher:
    return FieldCipher(["email", "*_token"], keys or (KEY,), masked)


def write(url: str, with_cipher: FieldCipher | None, spool: Path | None = None) -> PredictionLog:
    log = PredictionLog(url, "churn-api", flush_interval=0.01, cipher=with_cipher, spool_dir=spool)
    log.log_prediction("r1", "stable", "3", {"email": EMAIL, "tenure": 7}, {"prediction": 1})
    log.log_prediction(
        "r2",
        "stable",
        "3",
        {BATCH: 1, "columns": ["email", "tenure"], "rows": [(EMAIL, 1), ("bo@example.com", 2)]},
        {BATCH: 1, "row": [0, 1], "prediction": [0, 1], "probability": [0.2, 0.9]},
    )
    log.log_feedback({"churned": True, "api_token": "t0k3n"}, entity={"email": EMAIL}, at=1.0)
    return log


@pytest.fixture
def written(url: str) -> Iterator[PredictionLog]:
    log = write(url, cipher())
    log.flush()
    yield log
    log.close()


def test_a_log_with_the_key_reads_back_plain_values(written: PredictionLog) -> None:
    rows = {row["request_id"]: row for row in written.predictions()}
    assert rows["r1"]["inputs"] == {"email": EMAIL, "tenure": 7}
    assert rows["r2/0"]["inputs"] == {"email": EMAIL, "tenure": 1}
    assert rows["r2/1"]["inputs"] == {"email": "bo@example.com", "tenure": 2}
    [feedback] = written.feedback()
    assert feedback["entity"] == {"email": EMAIL}
    assert feedback["outcome"] == {"churned": True, "api_token": "t0k3n"}


def test_the_database_file_holds_tokens_not_the_values(written: PredictionLog, url: str) -> None:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        texts = [
            text
            for table, columns in (("predictions", "inputs"), ("feedback", "entity, outcome"))
            for row in connection.execute(f"SELECT {columns} FROM {table}")
            for text in row
        ]
    stored = "\n".join(texts)
    assert "example.com" not in stored and "t0k3n" not in stored
    assert stored.count(f'"{ENCRYPTED}') == 5  # r1, two batch cells, the entity, the token
    assert '"tenure":7' in stored and '"churned":true' in stored  # the rest stays plain
    assert EMAIL.encode() not in Path(path).read_bytes()


def test_the_spool_holds_tokens_not_the_values(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    log = write(DEAD_POSTGRES, cipher(), spool)  # nothing is written: every row stays spooled
    try:
        spooled = b"".join(p.read_bytes() for p in spool.rglob("*") if p.is_file())
        assert ENCRYPTED.encode() in spooled
        assert b"example.com" not in spooled and b"t0k3n" not in spooled
    finally:
        log.close(timeout=1.0)


def test_a_reader_without_the_key_sees_markers_and_does_not_fail(
    written: PredictionLog, url: str
) -> None:
    sql = "SELECT request_id, inputs FROM predictions WHERE service = {p} ORDER BY time"
    plain = dict(LogReader(url).stream(sql, ["churn-api"]))
    assert plain["r1"].startswith('{"email":"$enc:') and '"tenure":7' in plain["r1"]
    opened = dict(LogReader(url, cipher()).stream(sql, ["churn-api"]))
    assert opened["r1"] == f'{{"email":"{EMAIL}","tenure":7}}'
    other = dict(LogReader(url, cipher(NEW_KEY)).stream(sql, ["churn-api"]))
    assert other["r1"] == plain["r1"]  # a key that does not fit leaves the marker


def test_previous_keys_still_read_the_rows_written_before_a_rotation(
    written: PredictionLog, url: str
) -> None:
    rotated = PredictionLog(url, "churn-api", flush_interval=0.01, cipher=cipher(NEW_KEY, KEY))
    try:
        rotated.log_prediction("r3", "stable", "3", {"email": "cy@example.com"}, {"prediction": 0})
        rotated.flush()
        rows = {row["request_id"]: row["inputs"] for row in rotated.predictions()}
        assert rows["r1"]["email"] == EMAIL and rows["r3"]["email"] == "cy@example.com"
        new_only = {row["request_id"]: row["inputs"] for row in _read(url, cipher(NEW_KEY))}
        assert new_only["r3"]["email"] == "cy@example.com"  # the new key encrypts
        assert new_only["r1"]["email"].startswith(ENCRYPTED)  # the old one is needed for r1
    finally:
        rotated.close()


def _read(url: str, with_cipher: FieldCipher) -> list[dict[str, object]]:
    log = PredictionLog(url, "churn-api", cipher=with_cipher)
    try:
        return log.predictions()
    finally:
        log.close()


def test_a_field_both_masked_and_encrypted_is_masked(url: str) -> None:
    log = PredictionLog(url, "churn-api", flush_interval=0.01, cipher=cipher(masked=("email",)))
    try:
        log.log_prediction("r1", "stable", "3", {"email": MASK, "tenure": 7}, {"prediction": 1})
        log.flush()
        assert log.predictions()[0]["inputs"] == {"email": MASK, "tenure": 7}
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            [(stored,)] = connection.execute("SELECT inputs FROM predictions").fetchall()
        assert ENCRYPTED not in stored
    finally:
        log.close()


def test_field_patterns_match_at_any_depth_and_any_case() -> None:
    sealed = cipher().seal({"outcome": {"nested": [{"Refresh_Token": "x", "n": 1}]}})
    item = sealed["outcome"]["nested"][0]
    assert item["Refresh_Token"].startswith(ENCRYPTED) and item["n"] == 1
    assert cipher().open_text(f'{{"t":"{item["Refresh_Token"]}"}}') == '{"t":"x"}'


@pytest.mark.usefixtures("keys")
def test_keys_come_from_secrets_and_a_missing_one_names_service_secret_and_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cipher_for(PLAN, "churn-api") is not None
    assert cipher_for(None, "churn-api") is None
    rotated = PLAN.model_copy(update={"previous_keys": ["${secret:churn-api-old-key}"]})
    with pytest.raises(LogKeyError) as missing:
        cipher_for(rotated, "churn-api")
    assert "service 'churn-api'" in str(missing.value)
    assert "logging.previous_keys[0]" in str(missing.value)
    assert "secret 'churn-api-old-key'" in str(missing.value)
    assert "SHIPYARD_SECRET_CHURN_API_OLD_KEY" in (missing.value.hint or "")
    monkeypatch.setenv("SHIPYARD_SECRET_CHURN_API_LOG_KEY", "short")
    with pytest.raises(LogKeyError, match=r"holds 5 characters.*at least 32"):
        cipher_for(PLAN, "churn-api")
    reference = PLAN.model_copy(update={"key": "written-in-the-file"})
    with pytest.raises(LogKeyError, match="not a \\$\\{secret:NAME\\} reference"):
        cipher_for(reference, "churn-api")


@pytest.mark.usefixtures("keys")
def test_a_reader_whose_secret_is_missing_gets_no_cipher_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SHIPYARD_SECRET_CHURN_API_LOG_KEY")
    assert reader_cipher(PLAN, "churn-api") is None
    assert "churn-api-log-key" in caplog.text and "$enc:" in caplog.text


def test_a_key_that_opens_none_of_the_logged_values_fails_fast(
    written: PredictionLog, url: str
) -> None:
    check_keys(cipher(), url, "churn-api", PLAN)  # the key the rows were written with
    check_keys(cipher(NEW_KEY, KEY), url, "churn-api", PLAN)  # rotated, old key kept
    check_keys(cipher(NEW_KEY), url, "another-service", PLAN)  # nothing of its own yet
    with pytest.raises(LogKeyError) as wrong:
        check_keys(cipher(NEW_KEY), url, "churn-api", PLAN)
    message = str(wrong.value)
    assert "service 'churn-api'" in message and "secret 'churn-api-log-key'" in message
    assert "previous_keys" in (wrong.value.hint or "")


@pytest.mark.integration
def test_postgresql_log_stores_tokens_and_reads_back_plain_values() -> None:
    with throwaway_database("shipyard_logenc", create=True) as db:
        url = f"postgresql://postgres@127.0.0.1:5432/{db}"
        log = write(url, cipher())
        try:
            log.flush()
            union = "SELECT inputs FROM predictions UNION ALL SELECT entity FROM feedback"
            stored = psql(union, db)
            assert ENCRYPTED in stored.stdout and "example.com" not in stored.stdout
            rows = {row["request_id"]: row["inputs"] for row in log.predictions()}
            assert rows["r1"]["email"] == EMAIL and rows["r2/1"]["email"] == "bo@example.com"
            assert log.feedback()[0]["entity"] == {"email": EMAIL}
        finally:
            log.close()


# --- the spec ------------------------------------------------------------------------------------

SPEC = """\
project: demo
datasets:
  customers:
    path: data/customers.csv
    schema: {customer_id: int, email: str, tenure: int, churned: bool}
    expectations: [{not_null: customer_id}]
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [email, tenure]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    logging:
      mask: ["*_token"]
      encrypt: [email]
      encryption_key: "${secret:churn-api-log-key}"
      previous_keys: ["${secret:churn-api-log-key-2025}"]
    auth:
      api_keys:
        app: {key: "${secret:churn-api-key}"}
"""


def codes(text: str) -> list[str]:
    return [d.code for d in check(text)]


def test_a_good_declaration_is_quiet_and_compiles_to_references(tmp_path: Path) -> None:
    assert codes(SPEC) == []
    step = compile_text(tmp_path, SPEC).step("service.churn-api", ServiceStep)
    assert step.log_encryption == LogEncryptionPlan(
        fields=["email"],
        key="${secret:churn-api-log-key}",
        previous_keys=["${secret:churn-api-log-key-2025}"],
    )


def test_encrypt_without_a_key_is_e706() -> None:
    text = replaced(SPEC, ('      encryption_key: "${secret:churn-api-log-key}"\n', ""))
    [diagnostic] = check(text)
    assert diagnostic.code == "E706" and "encryption_key" in (diagnostic.hint or "")


def test_a_key_written_in_the_file_is_e707() -> None:
    text = replaced(SPEC, ('"${secret:churn-api-log-key-2025}"', '"hunter2hunter2"'))
    [diagnostic] = check(text)
    assert diagnostic.code == "E707" and "previous_keys[0]" in diagnostic.message


def test_a_field_masked_and_encrypted_is_e708_also_through_patterns() -> None:
    assert codes(replaced(SPEC, ('mask: ["*_token"]', "mask: [email]"))) == ["E708"]
    assert codes(replaced(SPEC, ('mask: ["*_token"]', 'mask: ["e*"]'))) == ["E708"]
    both = replaced(SPEC, ('mask: ["*_token"]', 'mask: ["*mail"]'), ("[email]", '["em*"]'))
    assert codes(both) == ["E708"]  # the field `email` matches both patterns


def test_an_unknown_field_is_e709_with_a_suggestion() -> None:
    [diagnostic] = check(replaced(SPEC, ("encrypt: [email]", "encrypt: [emial]")))
    assert diagnostic.code == "E709" and "did you mean 'email'" in (diagnostic.hint or "")
    assert codes(replaced(SPEC, ("encrypt: [email]", "encrypt: [outcome, 'e*']"))) == []


@pytest.mark.usefixtures("keys")
def test_a_service_starts_with_its_log_keys_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.serving.crypto import service_cipher
    from shipyard.serving.deploy import serve_env

    monkeypatch.setenv("SHIPYARD_SECRET_CHURN_API_KEY", "app-key-" + "a" * 30)
    monkeypatch.setenv("SHIPYARD_SECRET_CHURN_API_LOG_KEY_2025", NEW_KEY)
    step = compile_text(tmp_path, SPEC).step("service.churn-api", ServiceStep)
    env = serve_env(step)  # what the workers get: the log's keys beside the API keys
    assert env["SHIPYARD_SECRET_CHURN_API_LOG_KEY"] == KEY
    assert env["SHIPYARD_SECRET_CHURN_API_LOG_KEY_2025"] == NEW_KEY
    started = service_cipher(step)
    assert started is not None and started.encrypts("email") and not started.encrypts("tenure")
    monkeypatch.delenv("SHIPYARD_SECRET_CHURN_API_LOG_KEY_2025")
    with pytest.raises(LogKeyError, match="secret 'churn-api-log-key-2025', which is not set"):
        service_cipher(step)


def test_the_monitor_window_reads_encrypted_features_with_the_key_only(
    written: PredictionLog, url: str
) -> None:
    from shipyard.monitoring.window import read_window

    def window(with_cipher: FieldCipher | None) -> tuple[list[object], set[str]]:
        read = read_window(url, "churn-api", ["email"], 3600, False, cipher=with_cipher)
        return read.columns["email"], read.masked

    assert window(cipher()) == ([EMAIL, EMAIL, "bo@example.com"], set())
    assert window(None) == ([None, None, None], {"email"})  # unreadable here: like a mask

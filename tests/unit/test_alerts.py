"""The alerts engine against real channels: apprise posting JSON to a local webhook and mail to a
local SMTP server; severity floors, de-duplication, cooldown, resolution, unreachable channels,
secrets, and the delivery record in a temporary control database."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from support import free_port

from shipyard.alerts.engine import Alert, AlertEngine, deliveries, raise_alert, resolve_alert
from shipyard.alerts.store import AlertStore
from shipyard.compiler import Plan
from shipyard.compiler.alerts import AlertStep
from shipyard.errors import ShipyardError
from shipyard.secrets import env_name

from .specs import compile_text
from .webhook import Webhook

pytestmark = pytest.mark.usefixtures("no_state_dir_override", "quick_retries")

SMTP_USER, SMTP_PASSWORD = "shipyard", "s3cret-pw-4711"
SPEC = """\
project: shop
alerts:
  ops:
    channels: ["json://127.0.0.1:{hook}/ops"]
    cooldown: 10m
  pager:
    channels: ["json://127.0.0.1:{hook}/pager", "json://127.0.0.1:{dead}/dead"]
    min_severity: critical
  quiet:
    channels: ["json://127.0.0.1:{hook}/quiet"]
    send_resolved: false
  mail:
    channels:
      - "mailto://{user}:${{secret:smtp-password}}@127.0.0.1:{smtp}?to=ops@example.com&from=shipyard@example.com&mode=insecure"
    min_severity: info
"""


class Mailbox:
    """aiosmtpd handler: the messages an SMTP server took, after a LOGIN with the password."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    @staticmethod
    def authenticate(
        server: object, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)  # handled=False: a failure answers 535


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=Mailbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def plan(tmp_path: Path, webhook: Webhook, mailbox: tuple[Mailbox, int]) -> Plan:
    text = SPEC.format(hook=webhook.port, dead=free_port(), smtp=mailbox[1], user=SMTP_USER)
    return compile_text(tmp_path, text)


def drift(severity: str = "warning", key: str = "monitor.churn-api/drift") -> Alert:
    return Alert(
        key=key,
        severity=severity,  # type: ignore[arg-type]
        title="churn-api: input drift",
        body="PSI of tenure is 0.31 (threshold 0.2)",
        source="monitor.churn-api",
        labels={"service": "churn-api"},
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_alert_reaches_the_webhook_as_apprise_json(plan: Plan, webhook: Webhook) -> None:
    sent = raise_alert(plan, ["ops"], drift())

    [post] = webhook.at("/ops")
    assert post["title"] == "churn-api: input drift"
    assert post["type"] == "warning"
    assert post["message"].startswith("PSI of tenure is 0.31 (threshold 0.2)")
    assert "source: monitor.churn-api; key: monitor.churn-api/drift" in post["message"]
    assert "labels: service=churn-api" in post["message"]
    [delivery] = sent
    assert (delivery.route, delivery.key, delivery.status, delivery.ok, delivery.error) == (
        "ops",
        "monitor.churn-api/drift",
        "firing",
        True,
        None,
    )
    assert delivery.channel == f"json://127.0.0.1:{webhook.port}/ops"
    assert deliveries(plan, route="ops") == sent


def test_critical_is_an_apprise_failure(plan: Plan, webhook: Webhook) -> None:
    raise_alert(plan, ["ops"], drift("critical"))
    assert [p["type"] for p in webhook.at("/ops")] == ["failure"]


def test_a_route_takes_only_alerts_at_or_above_its_severity(plan: Plan, webhook: Webhook) -> None:
    assert raise_alert(plan, ["ops"], drift("info")) == []
    assert raise_alert(plan, ["pager"], drift("warning")) == []
    assert webhook.posts == []
    assert resolve_alert(plan, ["ops", "pager"], "monitor.churn-api/drift") == []
    assert deliveries(plan) == []


def test_a_firing_alert_is_sent_again_only_after_the_cooldown(plan: Plan, webhook: Webhook) -> None:
    clock = Clock()
    engine = AlertEngine(plan, clock=clock)
    assert len(engine.raise_alert(["ops"], drift())) == 1
    for seconds in (60, 599):
        clock.now += seconds - (clock.now - 1_000_000.0)
        assert engine.raise_alert(["ops"], drift()) == []
    clock.now = 1_000_000.0 + 600
    assert len(engine.raise_alert(["ops"], drift())) == 1

    first, again = webhook.at("/ops")
    assert "Firing since" not in first["message"]
    assert "Firing since 1970-01-12T13:46:40+00:00 (4 times)." in again["message"]
    state = AlertStore(plan.named(AlertStep, "ops").state_database).state("ops", drift().key)
    assert state is not None and state.occurrences == 4 and state.last_sent_at == clock.now


def test_a_severity_increase_is_sent_at_once(plan: Plan, webhook: Webhook) -> None:
    clock = Clock()
    engine = AlertEngine(plan, clock=clock)
    engine.raise_alert(["ops"], drift("warning"))
    clock.now += 10
    assert len(engine.raise_alert(["ops"], drift("critical"))) == 1
    clock.now += 10
    assert engine.raise_alert(["ops"], drift("critical")) == []
    assert [p["type"] for p in webhook.at("/ops")] == ["warning", "failure"]


def test_resolve_sends_one_resolved_message(plan: Plan, webhook: Webhook) -> None:
    raise_alert(plan, ["ops"], drift())
    [resolved] = resolve_alert(plan, ["ops"], drift().key, body="PSI of tenure is 0.05")
    assert resolve_alert(plan, ["ops"], drift().key) == []

    _, post = webhook.at("/ops")
    assert post["title"] == "[RESOLVED] churn-api: input drift"
    assert post["type"] == "success"
    assert post["message"].startswith("PSI of tenure is 0.05")
    assert (resolved.status, resolved.ok) == ("resolved", True)
    assert [d.status for d in deliveries(plan, key=drift().key)] == ["resolved", "firing"]


def test_an_alert_that_fires_again_after_resolving_is_sent_at_once(
    plan: Plan, webhook: Webhook
) -> None:
    raise_alert(plan, ["ops"], drift())
    resolve_alert(plan, ["ops"], drift().key)
    assert len(raise_alert(plan, ["ops"], drift())) == 1
    assert [p["type"] for p in webhook.at("/ops")] == ["warning", "success", "warning"]


def test_a_route_without_send_resolved_resolves_silently(plan: Plan, webhook: Webhook) -> None:
    raise_alert(plan, ["quiet"], drift())
    assert resolve_alert(plan, ["quiet"], drift().key) == []
    assert len(webhook.at("/quiet")) == 1
    assert len(raise_alert(plan, ["quiet"], drift())) == 1  # resolved: the next one is new


def test_an_unreachable_channel_is_recorded_and_the_others_are_told(
    plan: Plan, webhook: Webhook
) -> None:
    dead = plan.named(AlertStep, "pager").channels[1]
    sent = raise_alert(plan, ["pager"], drift("critical"))

    alert, failed, notice = sent
    assert (alert.ok, alert.key) == (True, drift().key)
    assert (failed.ok, failed.channel) == (False, dead)
    assert failed.error is not None and failed.error.startswith(f"{dead}: ")
    assert "(after 3 tries)" in failed.error
    assert (notice.ok, notice.key) == (True, "alert.pager/channel-unreachable")
    first, told = webhook.at("/pager")
    assert first["title"] == "churn-api: input drift"
    reason = "A Connection error occurred sending JSON notification to 127.0.0.1. (after 3 tries)"
    assert failed.error == f"{dead}: {reason}"
    assert told["title"] == f"alert channel {dead} of route pager is unreachable: {reason}"
    assert told["type"] == "failure"

    # another alert within the cooldown: the notice is not repeated
    again = raise_alert(plan, ["pager"], drift("critical", key="monitor.churn-api/errors"))
    assert [(d.key, d.ok) for d in again] == [
        ("monitor.churn-api/errors", True),
        ("monitor.churn-api/errors", False),
    ]
    assert len(webhook.at("/pager")) == 3


def test_the_unreachable_notice_resolves_once_every_channel_works_again(
    tmp_path: Path, webhook: Webhook
) -> None:
    channels = [f"json://127.0.0.1:{webhook.port}/{path}" for path in ("ok", "flaky")]
    plan = compile_text(tmp_path, f"project: shop\nalerts:\n  ops:\n    channels: {channels}\n")
    webhook.failing.add("/flaky")
    raise_alert(plan, ["ops"], drift())
    assert [p["title"] for p in webhook.at("/ok")] == [
        "churn-api: input drift",
        f"alert channel {channels[1]} of route ops is unreachable: Failed to send JSON POST "
        "notification: Internal server error., error=500. (after 3 tries)",
    ]

    webhook.failing.discard("/flaky")
    sent = raise_alert(plan, ["ops"], drift(key="monitor.churn-api/errors"))
    assert [(d.key, d.status, d.ok) for d in sent] == [
        ("monitor.churn-api/errors", "firing", True),
        ("monitor.churn-api/errors", "firing", True),
        ("alert.ops/channel-unreachable", "resolved", True),
        ("alert.ops/channel-unreachable", "resolved", True),
    ]
    resolved = webhook.at("/flaky")[-1]
    assert resolved["title"].startswith(f"[RESOLVED] alert channel {channels[1]} of route ops")
    assert resolved["message"].startswith("Every channel of the route takes alerts again.")


def test_a_channel_that_answers_500_is_a_failed_delivery(tmp_path: Path, webhook: Webhook) -> None:
    spec = f'project: shop\nalerts:\n  ops:\n    channels: ["json://127.0.0.1:{webhook.port}/broken"]\n'
    plan = compile_text(tmp_path, spec)
    [failed] = raise_alert(plan, ["ops"], drift())
    assert not failed.ok and failed.error is not None
    assert "500" in failed.error
    assert len(webhook.at("/broken")) == 3  # three tries
    # nobody heard of it: the next occurrence is sent at once, not after the cooldown
    assert len(raise_alert(plan, ["ops"], drift())) == 1


def test_a_secret_channel_is_resolved_when_sending_and_never_recorded(
    plan: Plan, mailbox: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_name("smtp-password"), SMTP_PASSWORD)
    box, port = mailbox
    [delivery] = raise_alert(plan, ["mail"], drift("info"))
    resolve_alert(plan, ["mail"], drift().key)

    assert delivery.ok, delivery.error
    first, resolved = box.messages
    assert first["Subject"] == "churn-api: input drift"
    assert first["To"] == "ops@example.com"
    text = first.get_body(preferencelist=("plain",))
    assert text is not None and "PSI of tenure is 0.31" in text.get_content()
    assert resolved["Subject"] == "[RESOLVED] churn-api: input drift"
    assert delivery.channel == f"mailto://{SMTP_USER}:***@127.0.0.1:{port}?" + (
        "to=ops@example.com&from=shipyard@example.com&mode=insecure"
    )
    database = Path(plan.named(AlertStep, "mail").state_database.removeprefix("sqlite:///"))
    for stored in database.parent.glob("control.sqlite*"):
        assert SMTP_PASSWORD.encode() not in stored.read_bytes(), stored
    assert SMTP_PASSWORD not in plan.model_dump_json()


def test_a_whole_channel_can_be_a_secret(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = 'project: shop\nalerts:\n  ops:\n    channels: ["${secret:hook-url}"]\n'
    plan = compile_text(tmp_path, spec)
    monkeypatch.setenv(env_name("hook-url"), "no URL at all")
    [bad] = raise_alert(plan, ["ops"], drift())
    assert bad.error == (
        "${secret:hook-url}: the URL this channel's secret gives is not one apprise can send to"
    )

    monkeypatch.setenv(env_name("hook-url"), f"json://127.0.0.1:{webhook.port}/secret-hook")
    [good] = raise_alert(plan, ["ops"], drift())
    assert (good.ok, good.channel) == (True, "${secret:hook-url}")
    assert [p["title"] for p in webhook.at("/secret-hook")] == ["churn-api: input drift"]


def test_a_wrong_secret_fails_without_revealing_it(
    plan: Plan, mailbox: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_name("smtp-password"), "wrong-pw-0815")
    [delivery] = raise_alert(plan, ["mail"], drift())
    assert not delivery.ok and delivery.error is not None
    assert "wrong-pw-0815" not in delivery.error
    assert delivery.error.startswith(f"mailto://{SMTP_USER}:***@127.0.0.1:")
    assert mailbox[0].messages == []


def test_a_missing_secret_is_a_failed_delivery_that_says_how_to_set_it(
    plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(env_name("smtp-password"), raising=False)
    [delivery] = raise_alert(plan, ["mail"], drift())
    assert not delivery.ok and delivery.error is not None
    assert "secret 'smtp-password' is not set" in delivery.error
    assert "SHIPYARD_SECRET_SMTP_PASSWORD" in delivery.error


def test_an_unknown_route_is_an_error_naming_the_defined_ones(plan: Plan) -> None:
    with pytest.raises(ShipyardError) as caught:
        raise_alert(plan, ["opz"], drift())
    assert caught.value.message == "alert route 'opz' is not defined in pipelines.yaml"
    assert caught.value.hint is not None and "ops" in caught.value.hint


def test_a_channel_apprise_cannot_read_is_an_error_naming_the_route(tmp_path: Path) -> None:
    spec = 'project: shop\nalerts:\n  ops:\n    channels: ["nosuchservice://somewhere"]\n'
    plan = compile_text(tmp_path, spec)
    with pytest.raises(ShipyardError) as caught:
        raise_alert(plan, ["ops"], drift())
    assert "channel 'nosuchservice://somewhere' of alert route 'ops'" in caught.value.message
    assert caught.value.resource == "alert.ops"
    assert caught.value.hint is not None and "apprise/wiki" in caught.value.hint


def test_an_unreachable_control_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    database = f"sqlite:///{tmp_path / 'not-a-folder' / 'control.sqlite'}"
    spec = (
        "project: shop\nprofiles:\n  local:\n    serving:\n"
        f"      control_database: {database}\n"
        'alerts:\n  ops:\n    channels: ["json://127.0.0.1:9/ops"]\n'
    )
    plan = compile_text(tmp_path, spec)
    with pytest.raises(ShipyardError) as caught:
        raise_alert(plan, ["ops"], drift())
    assert caught.value.message.startswith(
        f"alert states cannot be written in the control database {database}: "
    )
    assert caught.value.hint is not None and "control_database" in caught.value.hint

"""The Gate's body handling: a bare row becomes a batch of one; BentoML's 400s read like ours."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from shipyard.serving.gate import _read_body, _readable_400, _replay, _rows_body


def _read(chunks: list[bytes]) -> bytes:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def drain() -> bytes:
        wrapped = _rows_body(receive)
        out = b""
        while True:
            message = await wrapped()
            out += message["body"]
            if not message["more_body"]:
                return out

    return asyncio.run(drain())


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b'{"customer_id": 42}'], {"rows": [{"customer_id": 42}]}),
        ([b'{"customer_id":', b" 42}"], {"rows": [{"customer_id": 42}]}),
        ([b' { "rows" : [{"a": 1}]}'], {"rows": [{"a": 1}]}),
        ([b""], {"rows": []}),
        ([b'{"ro', b'ws": [{"a": 1}]}'], {"rows": [{"a": 1}]}),
        ([b"  ", b"{", b' "rows" ', b': [{"a": 2}]}'], {"rows": [{"a": 2}]}),
        ([b'{"rows"', b"", b":[", b'{"a": 3}', b"]}"], {"rows": [{"a": 3}]}),
        ([b'{"ro', b'ute": 1}'], {"rows": [{"route": 1}]}),
        ([b'{"rows_x', b'": 1}'], {"rows": [{"rows_x": 1}]}),
    ],
)
def test_a_bare_row_is_a_batch_of_one(chunks: list[bytes], expected: Any) -> None:
    assert json.loads(_read(chunks)) == expected


@pytest.mark.parametrize("chunks", [[b"{not json"], [b'{"rows" ', b', "b": 2}'], [b"{", b""]])
def test_malformed_json_stays_malformed(chunks: list[bytes]) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(_read(chunks))


def test_bentoml_validation_error_gets_the_shipyard_shape() -> None:
    bentoml_body = {
        "error": "1 validation error for PredictRequestIODescriptor",
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["rows", 0, "tenure"],
                "msg": "Input should be a valid integer",
                "url": "https://errors.pydantic.dev/2/v/int_parsing",
            }
        ],
    }
    raw = json.dumps(bentoml_body).encode()
    start = {
        "type": "http.response.start",
        "status": 400,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"999")],
    }
    new_start, body = _readable_400([start, {"type": "http.response.body", "body": raw}], "r-1")
    answer = json.loads(body["body"])
    assert answer == {
        "error": "invalid_request",
        "message": "rows.0.tenure: Input should be a valid integer",
        "detail": [
            {
                "loc": ["rows", 0, "tenure"],
                "msg": "Input should be a valid integer",
                "type": "int_parsing",
            }
        ],
        "request_id": "r-1",
    }
    lengths = [v for k, v in new_start["headers"] if k == b"content-length"]
    assert lengths == [str(len(body["body"])).encode()]


def test_a_400_that_is_not_a_validation_error_passes_unchanged() -> None:
    start = {"type": "http.response.start", "status": 400, "headers": []}
    raw = b'{"error": "something else"}'
    _, body = _readable_400([start, {"type": "http.response.body", "body": raw}], "r-2")
    assert body["body"] == raw


def test_a_client_leaving_while_the_start_is_undecided_is_passed_on() -> None:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"ro', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def first() -> dict[str, Any]:
        return dict(await _rows_body(receive)())

    assert asyncio.run(first()) == {"type": "http.disconnect"}


def _source(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def _part(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_body_without_length_is_read_whole_up_to_the_limit_and_replayed() -> None:
    async def main() -> tuple[Any, ...]:
        receive = _source(_part(b"ab", True), _part(b"cd", False), {"type": "http.disconnect"})
        body, complete = await _read_body(receive, limit=4)
        replay = _replay(body or b"", receive)
        return body, complete, await replay(), await replay()

    body, complete, first, after = asyncio.run(main())
    assert (body, complete) == (b"abcd", True)
    assert first == _part(b"abcd", False)
    assert after == {"type": "http.disconnect"}  # later calls reach the client again


def test_reading_stops_once_the_body_passes_the_limit() -> None:
    receive = _source(_part(b"abc", True), _part(b"de", True), _part(b"never read", False))
    assert asyncio.run(_read_body(receive, limit=4)) == (b"", False)


def test_a_client_leaving_mid_body_is_not_a_body() -> None:
    receive = _source(_part(b"abc", True), {"type": "http.disconnect"})
    assert asyncio.run(_read_body(receive, limit=100)) == (None, False)


def test_the_request_id_is_current_while_the_request_is_answered() -> None:
    from shipyard.logs import current_request_id
    from shipyard.serving.gate import EngineHolder, Gate

    seen: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current_request_id.get())  # what every log line written here carries
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def ignore(message: Any) -> None:
        pass

    async def call(headers: list[tuple[bytes, bytes]]) -> str | None:
        scope = {"type": "http", "method": "GET", "path": "/livez", "headers": headers}
        await Gate(app, EngineHolder())(scope, _source(), ignore)
        return current_request_id.get()

    after = asyncio.run(call([(b"x-request-id", b"req-7")]))
    asyncio.run(call([]))
    assert seen[0] == "req-7"
    assert after is None  # forgotten once the request is answered
    assert seen[1] is not None and len(seen[1]) == 32  # one is made up when none is sent

"""The ASGI middleware in front of the service: request ids, auth, rate limits, metrics, logs.

It answers 401/403/429 before BentoML reads the body, so refused requests cost little, and
it sees every response (including BentoML's own 400s) to count and log it once.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from shipyard.logs import current_request_id
from shipyard.serving.auth import AuthError
from shipyard.serving.telemetry import request_log

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROLES = {"/predict": "predict", "/feedback": "feedback"}
"""Path -> the role it needs; /admin/* needs admin; everything else is public."""
PUBLIC_COUNTED = {"/predict", "/feedback"}
VARIANT_HEADER = "x-shipyard-variant"
REQUEST_ID_HEADER = "x-request-id"


class EngineHolder:
    """Where the service instance puts its engine once loaded (the middleware starts first)."""

    engine: Any = None


def _json(
    status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> tuple[Message, Message]:
    payload = json.dumps(body).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *headers,
        ],
    }
    return start, {"type": "http.response.body", "body": payload}


_TAG_MANAGER = re.compile(
    r"<!-- Google Tag Manager.*?<!-- End Google Tag Manager[^>]*-->\s*", re.DOTALL
)


@functools.cache
def docs_page() -> bytes | None:
    """BentoML's OpenAPI page without its Google Tag Manager snippet, which would load a
    third-party tracker into every browser that opens the docs. None if the page moved."""
    try:
        import _bentoml_impl.server

        page = Path(_bentoml_impl.server.__file__).parent / "main-openapi.html"
        return _TAG_MANAGER.sub("", page.read_text()).encode()
    except (ImportError, OSError):
        return None


def _page(page: bytes, *headers: tuple[bytes, bytes]) -> Message:
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
            *headers,
        ],
    }


_BATCH_BODY = re.compile(rb'^\s*\{\s*"rows"\s*:')
_ROWS_KEY = b'"rows"'


def _starts_a_batch(prefix: bytes, complete: bool) -> bool | None:
    """Whether a body starting with `prefix` is a batch (its first key is "rows"); None while
    the bytes so far could still go either way (a client may send `{"ro` in one chunk)."""
    if _BATCH_BODY.match(prefix):
        return True
    rest = prefix.lstrip()
    if complete or rest[:1] not in (b"", b"{"):
        return False
    rest = rest[1:].lstrip()
    if len(rest) < len(_ROWS_KEY):
        return None if _ROWS_KEY.startswith(rest) else False
    # the key is complete but no ':' yet (the pattern would have matched otherwise)
    return None if rest.startswith(_ROWS_KEY) and not rest[len(_ROWS_KEY) :].strip() else False


def _rows_body(receive: Receive) -> Receive:
    """/predict takes one row as a bare object: such a body is passed on as {"rows": [row]}.

    The start of the body decides: a batch starts with its only key, "rows". Chunks are held
    back only until that is known (in practice the first chunk decides)."""
    state = {"decided": False, "wrapped": False}

    async def wrapped() -> Message:
        message = await receive()
        if message["type"] != "http.request":
            return message
        body: bytes = message.get("body", b"")
        if not state["decided"]:
            while (batch := _starts_a_batch(body, not message.get("more_body"))) is None:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return message
                body += message.get("body", b"")
            state["decided"] = True
            if batch:
                return {**message, "body": body}  # with any chunks held back, unchanged
            state["wrapped"] = True
            body = b'{"rows":[' + body
        elif not state["wrapped"]:
            return message
        if not message.get("more_body"):
            body += b"]}"
        return {**message, "body": body}

    return wrapped


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """A body sent without Content-Length, read up to `limit` bytes: (body, complete).

    The body is None when the client went away; complete is False when it passed the limit."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, False
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over an already read body, then waits on the client as before."""
    state = {"sent": False}

    async def replay() -> Message:
        if state["sent"]:
            return await receive()
        state["sent"] = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _readable_400(held: list[Message], request_id: str) -> tuple[Message, Message]:
    """BentoML's 400 body ({"error": "N validation errors for XIODescriptor", "detail": [...]})
    in the shape of every other Shipyard error: error, message (each problem, one line),
    detail without documentation links, and the request id."""
    start, *parts = held
    raw = b"".join(part.get("body", b"") for part in parts)
    try:
        data = json.loads(raw)
        problems = data.get("detail") if isinstance(data, dict) else None
        if not isinstance(problems, list) or "request_id" in data:
            raise ValueError("not a validation error")  # or already Shipyard's own 400
        detail = [
            {"loc": p.get("loc", []), "msg": p.get("msg", ""), "type": p.get("type", "")}
            for p in problems
            if isinstance(p, dict)
        ]
        message = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
            for item in detail
        )
        body = json.dumps(
            {
                "error": "invalid_request",
                "message": message or str(data.get("error")),
                "detail": detail,
                "request_id": request_id,
            }
        ).encode()
    except ValueError:
        body = raw
    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
    start = {**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    return start, {"type": "http.response.body", "body": body}


class Gate:
    """Pure ASGI middleware (no per-request Starlette objects)."""

    def __init__(
        self,
        app: ASGIApp,
        holder: EngineHolder,
        document: Callable[[Any], bytes] | None = None,
    ) -> None:
        """Args:
        app: BentoML's application.
        holder: Where the service puts its engine once loaded.
        document: The OpenAPI document served at /docs.json, given the engine (None while
            the service loads); without it, BentoML's own is served.
        """
        self.app = app
        self.holder = holder
        self.document = document

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        if len(request_id) > 128:
            request_id = request_id[:128]
        token = current_request_id.set(request_id)  # every line logged meanwhile carries it
        try:
            await self._answer(scope, receive, send, headers, request_id, started)
        finally:
            current_request_id.reset(token)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        request_id: str,
        started: float,
    ) -> None:
        path: str = scope["path"]
        info: dict[str, Any] = {
            "request_id": request_id,
            "headers": headers,
            "variant": None,
            "model_version": None,
            "principal": None,
        }
        scope["shipyard"] = info
        engine = self.holder.engine
        role = ROLES.get(path) or ("admin" if path.startswith("/admin") else None)
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def reply(status: int, body: dict[str, Any], *extra: tuple[bytes, bytes]) -> None:
            start, content = _json(status, {**body, "request_id": request_id}, [id_header, *extra])
            await send(start)
            await send(content)
            self._finish(engine, path, status, info, started, scope)

        if path in ("/", "/docs") and scope["method"] in ("GET", "HEAD"):
            page = docs_page()
            if page is not None:
                await send(_page(page, id_header))
                await send({"type": "http.response.body", "body": page})
                self._finish(engine, path, 200, info, started, scope)
                return
        if path == "/docs.json" and scope["method"] in ("GET", "HEAD") and self.document:
            document = self.document(engine)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(document)).encode()),
                        id_header,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": document})
            self._finish(engine, path, 200, info, started, scope)
            return
        if path == "/metrics" and engine is not None:
            engine.metrics.flush()  # this worker's buffered histogram observations
        if (role is not None or path == "/info") and engine is None:
            await reply(503, {"error": "starting", "message": "the service is still loading"})
            return
        if role is not None:
            if "json" not in headers.get("content-type", "json"):
                # `curl -d` sends form encoding: the API only speaks JSON, so read it as JSON
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"] + [
                    (b"content-type", b"application/json")
                ]
            try:
                principal = engine.auth.authenticate(
                    headers.get("authorization"), headers.get("x-api-key")
                )
                info["principal"] = principal.name
                engine.auth.authorize(principal, role)
            except AuthError as exc:
                extra = (
                    [(b"www-authenticate", b'Bearer realm="shipyard"')] if exc.status == 401 else []
                )
                await reply(exc.status, {"error": exc.reason, "message": str(exc)}, *extra)
                return
            wait = engine.limiter.check(principal.name) if engine.limiter.enabled else None
            if wait is not None:
                seconds = max(1, math.ceil(wait))
                await reply(
                    429,
                    {
                        "error": "rate_limited",
                        "message": f"rate limit reached for '{principal.name}'; "
                        f"retry after {seconds} s",
                    },
                    (b"retry-after", str(seconds).encode()),
                )
                return
            limit = engine.config.step.max_request_bytes
            length = headers.get("content-length")
            size = int(length) if length and length.isdigit() else None
            if size is None and scope["method"] != "GET":  # chunked: read it, up to the limit
                body, complete = await _read_body(receive, limit)
                if body is None:
                    return  # the client went away
                size = len(body) if complete else limit + 1
                receive = _replay(body, receive)
            if size is not None and size > limit:
                await reply(
                    413,
                    {
                        "error": "request_too_large",
                        "message": f"the request body is larger than this service reads "
                        f"({limit} bytes); send smaller batches or raise "
                        f"services.{engine.service}.batching.max_request_mb",
                    },
                )
                return
        if scope["method"] == "GET" and path in ("/info", "/admin/routing"):
            body = engine.info() if path == "/info" else engine.routing_info()
            await reply(200, body)
            return

        status_holder = [500]
        held: list[Message] = []  # a BentoML validation error, rewritten once complete

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
                if message["status"] == 400 and role is not None:
                    held.append(message)
                    return
            elif held:
                held.append(message)
                if message.get("more_body"):
                    return
                start, body = _readable_400(held, request_id)
                await send(start)
                await send(body)
                return
            await send(message)

        if path == "/predict":
            receive = _rows_body(receive)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._finish(engine, path, status_holder[0], info, started, scope)

    def _finish(
        self,
        engine: Any,
        path: str,
        status: int,
        info: dict[str, Any],
        started: float,
        scope: Scope,
    ) -> None:
        if engine is None:
            return
        seconds = time.perf_counter() - started
        variant = info["variant"] or "none"
        version = info["model_version"] or "none"
        if path in PUBLIC_COUNTED or path.startswith("/admin"):
            engine.metrics.request(path, status, variant, version, seconds)
        if engine.config.step.log_requests and path not in ("/metrics", "/livez", "/readyz"):
            request_log.info(
                "%s %s %d",
                scope["method"],
                path,
                status,
                extra={
                    "fields": {
                        "request_id": info["request_id"],
                        "service": engine.service,
                        "status": status,
                        "latency_ms": round(seconds * 1000, 3),
                        "principal": info["principal"],
                        "variant": info["variant"],
                        "model_version": info["model_version"],
                    }
                },
            )

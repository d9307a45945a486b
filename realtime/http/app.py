"""The HTTP ingest service's Starlette application: phone apps' endpoints, the REST API and
what every request goes through (body limit, device token, rate limit, errors).

    GET|POST /            OsmAnd protocol (Traccar Client, OsmAnd): query, form or JSON
    POST     /owntracks   OwnTracks HTTP mode
    /api/v1/...           the REST API (realtime/http/api.py), its OpenAPI document and docs page
    GET      /healthz     ``ok``
    GET      /metrics     Prometheus metrics: points stored, ack latency, group commits, busy retries

A body over ``MAX_BODY_BYTES`` is refused with 413 before any of it is parsed (by its
Content-Length, or as soon as a chunked body passes the limit). A missing, unknown or
revoked token gets 401 with the same words in every case.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from core.social.feed import CursorError
from realtime import protocol
from realtime.http import formats
from realtime.http.service import HttpIngest, RateLimited, Unauthorized
from realtime.metrics import CONTENT_TYPE
from realtime.protocol import MAX_MESSAGE_BYTES, ProtocolError
from realtime.store import Identity, Store

log = logging.getLogger("realtime")

MAX_BODY_BYTES = MAX_MESSAGE_BYTES
BODY_TIMEOUT_S = 30.0  # a body not received within this is refused (408): a slow client holds nothing longer
MAX_PARAMS = 50  # query or form parameters read from one request
UNAUTHORIZED = "unknown or revoked device token"

# The HTTP status of each error code of docs/protocol.md.
STATUS = {"bad_json": 400, "bad_message": 400, "unknown_type": 400, "unsupported_version": 400,
          "missing_field": 400, "wrong_type": 400, "invalid_value": 400, "invalid_point": 400,
          "unauthorized": 401, "not_found": 404, "invalid_transition": 409, "activity_closed": 409,
          "batch_too_large": 413, "message_too_large": 413, "rate_limited": 429, "internal": 500,
          "request_timeout": 408, "no_route": 404, "method_not_allowed": 405}


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request's body, refused (BodyTooLarge) past ``limit`` bytes without reading more."""
    declared = request.headers.get("content-length")
    if declared is None and request.method in ("GET", "HEAD") and "transfer-encoding" not in request.headers:
        return b""  # no body (a phone's every OsmAnd GET): nothing to wait for
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge()
        except ValueError:
            raise ProtocolError("bad_message", "Content-Length is not a number") from None
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge()
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTooSlow() from None
    return b"".join(chunks)


def error(code: str, message: str, plain: bool = False, headers: dict | None = None) -> Response:
    """An error answer: its HTTP status from ``STATUS``, a JSON body ``{"code", "message"}``
    (plain text for the phone apps' endpoints, whose apps log the text)."""
    status = STATUS.get(code, 400)
    if plain:
        return PlainTextResponse(f"{code}: {message}\n", status_code=status, headers=headers)
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer T``, or the password of HTTP Basic auth
    (OwnTracks sends the user name and password it is configured with)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        with contextlib.suppress(binascii.Error, ValueError, UnicodeDecodeError):
            _, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            return password or None
    return None


async def guarded(request: Request, handler, plain: bool = False) -> Response:
    """Run ``handler(request, body)`` with the body read under its limit, mapping every
    refusal to its status; an unexpected failure is a 500 saying nothing was stored."""
    svc: HttpIngest = request.app.state.svc
    try:
        body = await read_body(request)
        return await handler(svc, request, body)
    except BodyTooLarge:
        return error("message_too_large", f"the body is over {MAX_BODY_BYTES} bytes", plain)
    except BodyTooSlow:
        return error("request_timeout", f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s", plain,
                     headers={"Connection": "close"})
    except Unauthorized:
        return error("unauthorized", UNAUTHORIZED, plain, headers={"WWW-Authenticate": 'Bearer realm="tracker"'})
    except RateLimited as exc:
        return error("rate_limited", str(exc), plain, headers={"Retry-After": str(int(exc.retry_after + 0.999))})
    except ProtocolError as exc:
        return error(exc.code, exc.message, plain)
    except CursorError as exc:
        return error("invalid_value", str(exc), plain)
    except Exception as exc:  # noqa: BLE001 - one bad request must not take the service down
        code = getattr(exc, "code", None)
        if isinstance(code, str) and code in STATUS and code != "internal":
            return error(code, str(exc), plain)  # core's ActivityError and CursorError carry a code
        log.exception("internal error")
        return error("internal", protocol.ERROR_CODES["internal"], plain)


def decode_json(body: bytes):
    try:
        return orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"invalid JSON: {str(exc)[:120]}") from None


def form(raw: bytes) -> dict[str, str]:
    """Query or form parameters (``a=1&b=2``), the last of a repeated name winning; at most
    ``MAX_PARAMS``. A phone's usual query has nothing escaped and is split directly, which
    costs a tenth of ``parse_qsl``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("bad_message", "the parameters are not UTF-8") from None
    if text.count("&") >= MAX_PARAMS:
        raise ProtocolError("bad_message", f"more than {MAX_PARAMS} parameters")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    out = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            out[name] = value
    return out


async def account(svc: HttpIngest, request: Request, token: str | None) -> Identity:
    """Who the request is for (its token), counted against the token's rate limit."""
    identity = await svc.identify(token, request.client.host if request.client else "")
    svc.take(identity)
    return identity


# -- phone apps ----------------------------------------------------------------------------

OK = PlainTextResponse("OK\n")  # the same answer to every stored fix


async def _osmand(svc: HttpIngest, request: Request, body: bytes) -> Response:
    params = form(request.scope["query_string"])
    stripped = body.lstrip()
    if stripped[:1] in (b"{", b"["):
        device, fixes = formats.osmand_json(decode_json(body))
        device = device or params.get("id") or params.get("deviceid")
    else:
        if body:
            params.update(form(body))
        if not params:
            raise ProtocolError("missing_field", "send 'id', 'lat', 'lon' and 'timestamp' (the OsmAnd protocol)")
        device, fix = formats.osmand_params(params)
        fixes = [fix]
    identity = await account(svc, request, bearer(request) or device)
    await svc.save_fixes(identity, fixes)
    return OK


async def osmand(request: Request) -> Response:
    if request.method == "HEAD":  # what Starlette adds to a GET route: answered, nothing stored
        return PlainTextResponse("")
    return await guarded(request, _osmand, plain=True)


async def _owntracks(svc: HttpIngest, request: Request, body: bytes) -> Response:
    data = decode_json(body)
    identity = await account(svc, request, bearer(request))
    fix = formats.owntracks(data)
    if fix is not None:
        await svc.save_fixes(identity, [fix])
    return JSONResponse([])


async def owntracks(request: Request) -> Response:
    return await guarded(request, _owntracks, plain=True)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def metrics(request: Request) -> Response:
    return Response(request.app.state.svc.metrics.render(), media_type=CONTENT_TYPE)


def create_app(store: Store, redis_url: str | None = None, rate_per_s: float | None = None) -> Starlette:
    """The service over ``store``; its commits start and stop with the application."""
    from realtime.http import api

    options = {} if rate_per_s is None else {"rate_per_s": rate_per_s}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.svc = HttpIngest(store, redis_url=redis_url, **options)
        app.state.svc.start()
        try:
            yield
        finally:
            await app.state.svc.stop()

    routes = [Route("/", osmand, methods=["GET", "POST"]),
              Route("/owntracks", owntracks, methods=["POST"]),
              Route("/healthz", healthz, methods=["GET"]),
              Route("/metrics", metrics, methods=["GET"]),
              *api.routes()]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error})
    app.router.redirect_slashes = False  # /api/v1/activities/ is not found, not redirected
    return app


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (no such path, a method the path does not take) in the same
    shape as every other error."""
    code = {404: "no_route", 405: "method_not_allowed"}.get(exc.status_code, "bad_message")
    response = JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)
    return response

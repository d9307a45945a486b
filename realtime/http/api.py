"""The REST API under ``/api/v1``: the seed's endpoints over the websocket protocol's messages.

Each request is turned into the message of docs/protocol.md that does the same thing and
validated by ``realtime.protocol.parse_data``, so both services accept exactly the same
values and give the same error codes (as HTTP statuses here: realtime/http/app.py STATUS).
The OpenAPI document (realtime/http/openapi.py) describes every answer.
"""

from __future__ import annotations

import asyncio
import re
import time

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from realtime import protocol
from realtime.http.app import account, bearer, decode_json, guarded
from realtime.http.openapi import docs_page, openapi_document
from realtime.http.service import HttpIngest, RateLimited
from realtime.protocol import ProtocolError

PREFIX = "/api/v1"
INTEGER = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: int() also reads "²" and "١"


def _object(body: bytes) -> dict:
    data = decode_json(body) if body.strip() else None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "the body must be a JSON object")
    data.pop("type", None)
    data.pop("id", None)
    return data


def _query_int(request: Request, name: str):
    """A query parameter meant as an integer: the int when it reads as one, else the text
    (which the protocol's checks refuse as the wrong type)."""
    value = request.query_params.get(name)
    if value is None:
        return None
    return int(value) if INTEGER.fullmatch(value) else value


def _message(data: dict, kind: str):
    return protocol.parse_data({k: v for k, v in {**data, "type": kind}.items() if v is not None})


async def _create(svc: HttpIngest, request: Request, body: bytes) -> Response:
    identity = await account(svc, request, bearer(request))
    msg = _message(_object(body), "create")
    info = await svc.db(svc.store.create, identity.user_id, msg.sport, msg.title, msg.visibility, msg.client_ref)
    svc.created(info)
    return JSONResponse({"activity_id": info.id, "status": info.status, "sport": info.sport,
                         "client_ref": msg.client_ref}, status_code=201)


async def create_activity(request: Request) -> Response:
    return await guarded(request, _create)


async def _status(svc: HttpIngest, request: Request, body: bytes) -> Response:
    identity = await account(svc, request, bearer(request))
    data = _object(body)
    raw_id = request.path_params["activity_id"]
    data["activity_id"] = int(raw_id) if INTEGER.fullmatch(raw_id) else raw_id
    msg = _message(data, "status")
    await svc.activity_for(identity, msg.activity_id)
    svc.touched[msg.activity_id] = time.monotonic()
    at = msg.at if msg.at is not None else time.time()
    info = await svc.db(svc.store.change_status, msg.activity_id, identity.user_id, msg.command, at)
    svc.status_changed(info, at)
    return JSONResponse({"activity_id": info.id, "status": info.status})


async def change_status(request: Request) -> Response:
    return await guarded(request, _status)


async def _gps_logs(svc: HttpIngest, request: Request, body: bytes) -> Response:
    identity = await account(svc, request, bearer(request))
    msg = _message(_object(body), "points")
    return JSONResponse(await svc.log_points(identity, msg))


async def gps_logs(request: Request) -> Response:
    return await guarded(request, _gps_logs)


async def _feed(svc: HttpIngest, request: Request, body: bytes) -> Response:
    identity = await account(svc, request, bearer(request))
    msg = _message({"limit": _query_int(request, "limit"), "cursor": request.query_params.get("cursor")}, "feed")
    return JSONResponse(await svc.db(svc.store.feed, identity.user_id, msg.cursor, msg.limit, slow=True))


async def news_feed(request: Request) -> Response:
    return await guarded(request, _feed)


async def _recommendations(svc: HttpIngest, request: Request, body: bytes) -> Response:
    identity = await account(svc, request, bearer(request))
    msg = _message({"kind": request.query_params.get("kind"), "limit": _query_int(request, "limit")},
                   "recommendations")
    if identity.token_id in svc.suggesting:
        raise RateLimited(1.0, "one recommendations request at a time: wait for its answer")
    svc.suggesting.add(identity.token_id)
    try:
        items = await asyncio.get_running_loop().run_in_executor(
            svc.store.slow_executor, svc.store.recommendations, identity.user_id, msg.kind, msg.limit)
    finally:
        svc.suggesting.discard(identity.token_id)
    return JSONResponse({"kind": msg.kind, "items": items})


async def recommendations(request: Request) -> Response:
    return await guarded(request, _recommendations)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def docs(request: Request) -> Response:
    return HTMLResponse(docs_page(), headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/activities", create_activity, methods=["POST"]),
        Route(f"{PREFIX}/activities/{{activity_id}}", change_status, methods=["PATCH"]),
        Route(f"{PREFIX}/gps-logs", gps_logs, methods=["POST"]),
        Route(f"{PREFIX}/news-feed", news_feed, methods=["GET"]),
        Route(f"{PREFIX}/recommendations", recommendations, methods=["GET"]),
        Route(f"{PREFIX}/openapi.json", openapi_json, methods=["GET"]),
        Route(f"{PREFIX}/docs", docs, methods=["GET"]),
    ]

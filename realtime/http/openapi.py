"""The OpenAPI document of the HTTP service (``/api/v1/openapi.json``) and its docs page
(``/api/v1/docs``), a page rendered here from the document with no script and nothing fetched
from elsewhere."""

from __future__ import annotations

import functools
import html
import json

from core.activities.tables import SPORTS, STATUSES, VISIBILITIES
from realtime.protocol import (
    COMMANDS,
    ERROR_CODES,
    MAX_POINTS_PER_BATCH,
    MAX_SEQ,
    MIN_TIME_S,
    RECOMMENDATION_KINDS,
)

NUMBER_OR_NULL = {"type": "number", "nullable": True}
ERROR_STATUSES = {"400": "Invalid request: the code and message say what and where",
                  "401": "Missing, unknown or revoked device token",
                  "404": "No such activity for this athlete",
                  "409": "The activity's status does not allow it",
                  "413": "Body or batch too large",
                  "408": "The body did not arrive in time",
                  "429": "Too many requests for this token: resend after Retry-After seconds",
                  "500": "The server failed: nothing was acknowledged; resend"}


def _error_responses(*codes: str, plain: bool = False) -> dict:
    """The error answers of an operation: ``codes`` and, for every one, 408 and 500."""
    content = ({"text/plain": {"schema": {"type": "string"}}} if plain
               else {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}})
    out = {code: {"description": ERROR_STATUSES[code], "content": content} for code in (*codes, "408", "500")}
    if "429" in out:
        out["429"] = {**out["429"], "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                                "description": "seconds"}}}
    return out


def _json(schema_ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}


SCHEMAS = {
    "Error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "enum": [*ERROR_CODES, "unauthorized", "request_timeout",
                                                            "no_route", "method_not_allowed"]},
                       "message": {"type": "string"}}},
    "CreateActivity": {
        "type": "object", "required": ["sport"],
        "properties": {"sport": {"type": "string", "enum": list(SPORTS)},
                       "title": {"type": "string", "description": "cut to 200 characters, on one line"},
                       "visibility": {"type": "string", "enum": list(VISIBILITIES)},
                       "client_ref": {"type": "string", "maxLength": 64,
                                      "description": "the device's own id: the same create again returns the same "
                                                     "activity; no control characters, not starting with 'fixes:'"}}},
    "Created": {
        "type": "object", "required": ["activity_id", "status", "sport"],
        "properties": {"activity_id": {"type": "integer"}, "status": {"type": "string", "enum": list(STATUSES)},
                       "sport": {"type": "string", "enum": list(SPORTS)},
                       "client_ref": {"type": "string", "nullable": True}}},
    "StatusChange": {
        "type": "object", "required": ["command"],
        "properties": {"command": {"type": "string", "enum": list(COMMANDS)},
                       "at": {"type": "number", "minimum": MIN_TIME_S,
                              "description": "when it happened on the device (Unix seconds; at most 5 minutes ahead)"}}},
    "ActivityStatus": {
        "type": "object", "required": ["activity_id", "status"],
        "properties": {"activity_id": {"type": "integer"}, "status": {"type": "string", "enum": list(STATUSES)}}},
    "Point": {
        "type": "object", "required": ["seq", "t"],
        "properties": {"seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
                       "t": {"type": "number", "minimum": MIN_TIME_S,
                             "description": "Unix seconds; at most 5 minutes ahead, from 2000 on"},
                       "lat": {**NUMBER_OR_NULL, "minimum": -90, "maximum": 90},
                       "lon": {**NUMBER_OR_NULL, "minimum": -180, "maximum": 180},
                       "ele": {**NUMBER_OR_NULL, "minimum": -1000, "maximum": 10000},
                       "acc": {**NUMBER_OR_NULL, "minimum": 0},
                       "hr": {**NUMBER_OR_NULL, "minimum": 0, "maximum": 300},
                       "cad": {**NUMBER_OR_NULL, "minimum": 0, "maximum": 300}}},
    "GpsLog": {
        "type": "object", "required": ["activity_id", "points"],
        "properties": {"activity_id": {"type": "integer", "minimum": 1},
                       "points": {"type": "array", "maxItems": MAX_POINTS_PER_BATCH,
                                  "items": {"$ref": "#/components/schemas/Point"}}}},
    "LiveStats": {
        "type": "object", "nullable": True,
        "properties": {name: NUMBER_OR_NULL for name in (
            "elapsed_s", "moving_s", "distance_m", "current_speed_mps", "avg_speed_mps",
            "current_pace_s_per_km", "avg_pace_s_per_km")}},
    "Ack": {
        "type": "object", "required": ["activity_id", "stored", "duplicates", "stats", "cues"],
        "properties": {"activity_id": {"type": "integer"}, "stored": {"type": "integer"},
                       "duplicates": {"type": "integer"},
                       "stats": {"$ref": "#/components/schemas/LiveStats"},
                       "cues": {"type": "array", "items": {"type": "string"},
                                "description": "spoken cues now due, by the athlete's cue settings"},
                       "suggest_pause": {"type": "object", "nullable": True,
                                         "description": "a sustained vehicle-speed stretch: see docs/protocol.md"}}},
    "FeedItem": {
        "type": "object", "required": ["activity_id", "athlete", "sport", "title"],
        "properties": {"activity_id": {"type": "integer"}, "athlete": {"type": "string"},
                       "sport": {"type": "string"}, "title": {"type": "string"},
                       "start_time": {"type": "string", "format": "date-time", "nullable": True},
                       "distance_m": NUMBER_OR_NULL, "moving_time_s": NUMBER_OR_NULL,
                       "avg_pace_s_per_km": NUMBER_OR_NULL, "avg_speed_mps": NUMBER_OR_NULL,
                       "badges": {"type": "array", "items": {"type": "string"},
                                  "description": "codes of the badges the activity earned and still holds"}}},
    "FeedPage": {
        "type": "object", "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/FeedItem"}},
                       "next_cursor": {"type": "string", "nullable": True}}},
    "Suggestions": {
        "type": "object", "required": ["kind", "items"],
        "properties": {"kind": {"type": "string", "enum": list(RECOMMENDATION_KINDS)},
                       "items": {"type": "array", "items": {"type": "object", "properties": {
                           "route_id": {"type": "integer"}, "name": {"type": "string"},
                           "username": {"type": "string"}, "reason": {"type": "string"},
                           "distance_m": NUMBER_OR_NULL, "elevation_gain_m": NUMBER_OR_NULL,
                           "kind": {"type": "string", "nullable": True},
                           "polyline": {"type": "array", "nullable": True,
                                        "items": {"type": "array", "items": {"type": "number"}}}}}}}},
    "TraccarLocation": {
        "type": "object",
        "description": "Traccar Client 9's JSON body; 'location' may also be a list of locations",
        "required": ["location"],
        "properties": {"device_id": {"type": "string"}, "location": {"type": "object", "properties": {
            "timestamp": {"type": "string", "format": "date-time"},
            "coords": {"type": "object", "required": ["latitude", "longitude"], "properties": {
                "latitude": {"type": "number"}, "longitude": {"type": "number"}, "accuracy": {"type": "number"},
                "speed": {"type": "number"}, "heading": {"type": "number"}, "altitude": {"type": "number"}}},
            "is_moving": {"type": "boolean"}, "odometer": {"type": "number"}, "event": {"type": "string"},
            "battery": {"type": "object"}, "activity": {"type": "object", "properties": {"type": {"type": "string"}}}}}}},
    "OwnTracksMessage": {
        "type": "object", "required": ["_type"],
        "description": "OwnTracks HTTP mode; messages of another _type are answered [] and ignored",
        "properties": {"_type": {"type": "string"}, "lat": {"type": "number"}, "lon": {"type": "number"},
                       "tst": {"type": "integer"}, "acc": {"type": "number"}, "alt": {"type": "number"},
                       "vel": {"type": "number", "description": "km/h"}, "cog": {"type": "number"},
                       "batt": {"type": "number"}, "tid": {"type": "string"}}},
}

OSMAND_PARAMETERS = [
    {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
    for name, schema, text in (
        ("id", {"type": "string"}, "the device token (the app's device identifier); or send it as a Bearer token"),
        ("deviceid", {"type": "string"}, "the same as id"),
        ("timestamp", {"type": "string"}, "Unix seconds (or milliseconds) or ISO 8601; the server's time when absent"),
        ("lat", {"type": "number", "minimum": -90, "maximum": 90}, "latitude, degrees"),
        ("lon", {"type": "number", "minimum": -180, "maximum": 180}, "longitude, degrees"),
        ("speed", {"type": "number"}, "knots"),
        ("bearing", {"type": "number"}, "degrees"),
        ("altitude", {"type": "number"}, "metres"),
        ("accuracy", {"type": "number"}, "metres"),
        ("batt", {"type": "number"}, "battery, percent"),
    )]


def _operation(summary: str, description: str, ok: dict, errors: tuple[str, ...], **extra) -> dict:
    return {"summary": summary, "description": description, "responses": {**ok, **_error_responses(*errors)},
            **extra}


@functools.cache
def openapi_document() -> dict:
    """The OpenAPI 3.0 document of every endpoint of the HTTP service."""
    bearer = [{"bearer": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Activity tracker HTTP API", "version": "1",
                 "description": "The REST API (the websocket protocol of docs/protocol.md over HTTP) and the "
                                "phone apps' endpoints (docs/phone-apps.md). Authenticate with a device token: "
                                "python -m core device-token --user NAME."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic",
                                          "description": "OwnTracks: the password is the device token"}},
            "schemas": SCHEMAS},
        "security": bearer,
        "paths": {
            "/api/v1/activities": {"post": _operation(
                "Create an activity", "The seed's POST /activities; the websocket protocol's create.",
                {"201": {"description": "Created (or the existing one for the same client_ref)",
                         "content": _json("Created")}},
                ("400", "401", "413", "429"),
                requestBody={"required": True, "content": _json("CreateActivity")})},
            "/api/v1/activities/{activity_id}": {"patch": _operation(
                "Change an activity's status", "start, pause, resume, stop, complete or discard.",
                {"200": {"description": "The new status", "content": _json("ActivityStatus")}},
                ("400", "401", "404", "409", "413", "429"),
                parameters=[{"name": "activity_id", "in": "path", "required": True,
                             "schema": {"type": "integer", "minimum": 1}}],
                requestBody={"required": True, "content": _json("StatusChange")})},
            "/api/v1/gps-logs": {"post": _operation(
                "Log GPS points", "Answered once the points are durable; a point already stored "
                                  "(same activity and seq) is not stored again.",
                {"200": {"description": "Stored, with live stats", "content": _json("Ack")}},
                ("400", "401", "404", "409", "413", "429"),
                requestBody={"required": True, "content": _json("GpsLog")})},
            "/api/v1/news-feed": {"get": _operation(
                "Read the news feed", "The athlete's and followed athletes' completed activities, newest first.",
                {"200": {"description": "A page and the cursor of the next", "content": _json("FeedPage")}},
                ("400", "401", "429"),
                parameters=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                            {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": 200}}])},
            "/api/v1/recommendations": {"get": _operation(
                "Read suggestions", "Routes or athletes to follow, best first, each with its reason.",
                {"200": {"description": "Suggestions", "content": _json("Suggestions")}},
                ("400", "401", "429"),
                parameters=[{"name": "kind", "in": "query",
                             "schema": {"type": "string", "enum": list(RECOMMENDATION_KINDS)}},
                            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 50}}])},
            "/": {
                "get": {"summary": "OsmAnd protocol (Traccar Client, OsmAnd)", "security": [{}, {"bearer": []}],
                        "parameters": OSMAND_PARAMETERS,
                        "responses": {"200": {"description": "Stored", "content": {"text/plain": {"schema": {"type": "string"}}}},
                                      **_error_responses("400", "401", "413", "429", plain=True)}},
                "post": {"summary": "OsmAnd protocol: form parameters, or Traccar Client's JSON",
                         "security": [{}, {"bearer": []}], "parameters": OSMAND_PARAMETERS,
                         "requestBody": {"content": {
                             "application/json": {"schema": {"$ref": "#/components/schemas/TraccarLocation"}},
                             "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                                 p["name"]: p["schema"] for p in OSMAND_PARAMETERS}}}}},
                         "responses": {"200": {"description": "Stored", "content": {"text/plain": {"schema": {"type": "string"}}}},
                                       **_error_responses("400", "401", "413", "429", plain=True)}}},
            "/owntracks": {"post": {
                "summary": "OwnTracks HTTP mode", "security": [{"basic": []}, {"bearer": []}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/OwnTracksMessage"}}}},
                "responses": {"200": {"description": "Stored (or ignored: not a location)",
                                      "content": {"application/json": {"schema": {"type": "array", "maxItems": 0}}}},
                              **_error_responses("400", "401", "413", "429", plain=True)}}},
        },
    }


@functools.cache
def docs_page() -> str:
    """The API's docs as one HTML page, every text from the document escaped."""
    doc = openapi_document()
    esc = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(doc['info']['title'])}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "pre{background:#f4f4f4;padding:.6em;overflow:auto}code{background:#f4f4f4}"
             "h2{border-top:1px solid #ccc;padding-top:.8em}</style></head><body>",
             f"<h1>{esc(doc['info']['title'])}</h1><p>{esc(doc['info']['description'])}</p>",
             "<p>The machine-readable document: <a href='/api/v1/openapi.json'>/api/v1/openapi.json</a>.</p>"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            parts.append(f"<h2><code>{esc(method.upper())} {esc(path)}</code></h2><p><b>{esc(op['summary'])}</b>"
                         f" {esc(op.get('description', ''))}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>")
                for p in params:
                    parts.append(f"<tr><td><code>{esc(p['name'])}</code></td><td>{esc(p['in'])}</td>"
                                 f"<td>{esc(json.dumps(p['schema']))}</td><td>{esc(p.get('description', ''))}</td></tr>")
                parts.append("</table>")
            body = op.get("requestBody")
            if body:
                for kind, content in body["content"].items():
                    parts.append(f"<p>Body ({esc(kind)}):</p><pre>{esc(json.dumps(_resolve(content['schema'], doc), indent=1))}</pre>")
            parts.append("<ul>")
            for status, answer in op["responses"].items():
                parts.append(f"<li><b>{esc(status)}</b> {esc(answer['description'])}</li>")
            parts.append("</ul>")
    parts.append("</body></html>")
    return "".join(parts)


def _resolve(schema, doc, depth: int = 0):
    """The schema with its references written out (for reading, not for validating)."""
    if depth > 6:
        return schema
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _resolve(doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], doc, depth + 1)
        return {k: _resolve(v, doc, depth + 1) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(v, doc, depth + 1) for v in schema]
    return schema

"""RFC 9457 problem details for every error, with a stable `code`."""
from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, g, has_app_context
from werkzeug.exceptions import HTTPException

from ledger.domain.errors import LedgerError

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"


class ApiProblem(Exception):
    """An HTTP-level problem (auth, media type, malformed JSON) raised by the API layer itself."""

    def __init__(self, status: int, code: str, title: str, detail: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail or title
        self.headers = headers or {}
        self.extra = extra


def problem_body(status: int, code: str, title: str, detail: str, request_id: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    """The problem's fields; `request_id` defaults to the current request's (none outside one)."""
    body = {"type": f"urn:loyalty-ledger:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code}
    body.update({k: v for k, v in extra.items() if v is not None and k not in body})
    if request_id is None and has_app_context():
        request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    return body


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def problem_response(status: int, code: str, title: str, detail: str,
                     headers: dict[str, str] | None = None, **extra: Any) -> Response:
    response = Response(dumps(problem_body(status, code, title, detail, **extra)), status=status,
                        mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def ledger_error_body(error: LedgerError, request_id: str | None = None) -> tuple[int, dict[str, Any]]:
    return error.status, problem_body(error.status, error.code, error.title, error.detail, request_id, **error.extra)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 400: "bad_request"}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(LedgerError)
    def _ledger(error: LedgerError) -> Response:
        if error.status >= 500:
            log.error("ledger error: %s", error, exc_info=error)
        return problem_response(error.status, error.code, error.title, error.detail, **error.extra)

    @app.errorhandler(ApiProblem)
    def _api(error: ApiProblem) -> Response:
        return problem_response(error.status, error.code, error.title, error.detail, error.headers, **error.extra)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
        return problem_response(status, code, error.name, error.description or error.name, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return problem_response(500, "internal_error", "Internal server error",
                                "an unexpected error occurred; nothing was written")

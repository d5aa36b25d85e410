"""Liveness, readiness, and the OpenAPI document as YAML."""
from __future__ import annotations

from flask import Flask, Response, current_app

from ..errors import problem_response
from ..http import json_response


def register(app: Flask, api) -> None:  # noqa: ANN001
    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            with current_app.extensions["ledger"].uow() as uow:
                uow.ping()
        except Exception as exc:  # noqa: BLE001
            return problem_response(503, "not_ready", "Not ready", f"the database does not answer: {type(exc).__name__}")
        return json_response({"status": "ready"})

    @app.get("/openapi.yaml")
    def openapi_yaml() -> Response:
        from ..openapi import render_yaml

        return Response(render_yaml(api), mimetype="application/yaml")

"""API keys of the caller's program: list, create, rotate, revoke (admin)."""
from __future__ import annotations

from flask import Response, current_app

from ledger.services import programs as use_cases
from ledger.services.ports import ApiKey, StoredAnswer
from ledger.services.programs import IssuedKey
from ledger.services.writes import WriteRequest, run_write

from ..errors import dumps, problem_body
from ..http import Blueprint, answer_response, fingerprint, idempotency_key, json_response, program_id, read
from ..http import render_error, requires, write
from ..schemas.programs import ApiKeyCreate, ApiKeyList, ApiKeyOut, IssuedApiKeyOut

blp = Blueprint("api_keys", __name__, url_prefix="/v1/api-keys", description="API keys (admin)")


def key_dict(key: ApiKey) -> dict:
    return {"id": key.id, "role": key.role, "name": key.name, "prefix": key.prefix, "created_at": key.created_at,
            "last_used_at": key.last_used_at, "revoked_at": key.revoked_at, "replaced_by": key.replaced_by}


def _issue(action) -> Response:  # noqa: ANN001
    """Secrets are shown once: a repeated Idempotency-Key answers 409 `api_key_already_created`."""
    ledger = current_app.extensions["ledger"]
    issued: list[IssuedKey] = []

    def stored_answer(result: IssuedKey) -> StoredAnswer:
        issued.append(result)
        body = problem_body(409, "api_key_already_created", "API key already created",
                            f"key {result.key.id} was already created with this Idempotency-Key; "
                            "its secret is not shown again", key_id=result.key.id)
        return StoredAnswer(409, dumps(body))

    outcome = run_write(ledger.uow, ledger.clock,
                        WriteRequest(program_id=program_id(), fingerprint=fingerprint(),
                                     idempotency_key=idempotency_key()),
                        action, render=stored_answer, render_error=render_error,
                        is_retryable=ledger.uow.is_retryable)
    if outcome.replayed or not issued:  # a replay, or a refusal (unknown or revoked key)
        return answer_response(outcome.answer, outcome.replayed)
    result = issued[-1]
    return json_response(IssuedApiKeyOut().dump({**key_dict(result.key), "key": result.secret}), 201)


@blp.route("", methods=["GET"])
@blp.response(200, ApiKeyList)
@requires("admin")
def list_keys() -> Response:
    """Every key of the program, with its last-used time (to within a minute); secrets are never listed."""
    keys = read(lambda uow: use_cases.list_api_keys(uow, program_id()))
    return json_response(ApiKeyList().dump({"items": [key_dict(k) for k in keys]}))


@blp.route("", methods=["POST"])
@blp.arguments(ApiKeyCreate)
@blp.response(201, IssuedApiKeyOut)
@requires("admin")
def create_key(body: dict) -> Response:
    """A new key for a role; the secret is in this answer only."""
    ledger = current_app.extensions["ledger"]
    return _issue(lambda uow: use_cases.create_api_key(uow, ledger.clock, program_id(), body["role"],
                                                       body.get("name")))


@blp.route("/<key_id>/rotate", methods=["POST"])
@blp.response(201, IssuedApiKeyOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("admin")
def rotate_key(key_id: str) -> Response:
    """A new key with the same role and name; the old one stops working at once (on other
    service processes, within `LEDGER_AUTH_CACHE_SECONDS`, 1 s by default)."""
    ledger = current_app.extensions["ledger"]
    try:
        return _issue(lambda uow: use_cases.rotate_api_key(uow, ledger.clock, program_id(), key_id))
    finally:
        ledger.forget_keys()


@blp.route("/<key_id>", methods=["DELETE"])
@blp.response(200, ApiKeyOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires("admin")
def revoke_key(key_id: str) -> Response:
    """Revoke a key (idempotent: revoking a revoked key answers the same). It stops working at once
    (on other service processes, within `LEDGER_AUTH_CACHE_SECONDS`, 1 s by default)."""
    ledger = current_app.extensions["ledger"]
    try:
        key = write(lambda uow: use_cases.revoke_api_key(uow, ledger.clock, program_id(), key_id))
    finally:
        ledger.forget_keys()
    return json_response(ApiKeyOut().dump(key_dict(key)))


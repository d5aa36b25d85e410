"""Programs and their settings."""
from __future__ import annotations

import dataclasses

from flask import Response, current_app, g

from ledger.domain.errors import ValidationFailed
from ledger.domain.programs import ROLES, Program, ProgramSettings
from ledger.services import programs as use_cases
from ledger.services.writes import transact

from ..http import OPERATOR, Blueprint, idempotency_key, json_response, principal, program_id, read, requires, write
from ..schemas.programs import ProgramChanges, ProgramCreate, ProgramCreated, ProgramOut, ProgramPatch

blp = Blueprint("programs", __name__, url_prefix="/v1", description="A loyalty program and its settings")

ALL_ROLES = ROLES


def program_dict(program: Program) -> dict:
    return {"id": program.id, **program.settings.to_dict(), "created_at": program.created_at}


@blp.route("/programs", methods=["POST"])
@blp.arguments(ProgramCreate)
@blp.response(201, ProgramCreated)
@blp.alt_response(409, response="CONFLICT")
@requires(OPERATOR)
def create_program(body: dict) -> Response:
    """Create a program; its four API keys (admin, storefront, app, finance) are shown only here.

    Repeating the call with the same Idempotency-Key answers 409 `program_already_created`
    with the program id: keys are never shown twice.
    """
    ledger = current_app.extensions["ledger"]
    settings = ProgramSettings(**body)
    key = idempotency_key()
    created = transact(ledger.uow, lambda uow: use_cases.create_program(uow, ledger.clock, settings, key),
                       ledger.uow.is_retryable)
    data = program_dict(created.program)
    data["api_keys"] = {role: issued.secret for role, issued in created.keys.items()}
    return json_response(ProgramCreated().dump(data), 201)


@blp.route("/program", methods=["GET"])
@blp.response(200, ProgramOut)
@requires(*ALL_ROLES)
def get_program() -> Response:
    """The caller's program settings (API keys are never listed here)."""
    program = read(lambda uow: use_cases.get_program(uow, program_id()))
    return json_response(ProgramOut().dump(program_dict(program)))


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ProgramSettings) if f.default is not dataclasses.MISSING}


@blp.route("/program", methods=["PATCH"])
@blp.arguments(ProgramPatch)
@blp.response(200, ProgramOut)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("admin")
def patch_program(body: dict) -> Response:
    """JSON merge patch of the settings: `null` restores a setting's default. Recorded with who,
    when, before and after; applies to requests that start after it."""
    changes = {}
    for name, value in body.items():
        if value is None:
            if name not in _DEFAULTS:
                raise ValidationFailed([{"field": name, "message": "cannot be cleared"}])
            value = _DEFAULTS[name]
        changes[name] = value
    ledger = current_app.extensions["ledger"]
    program = write(lambda uow: use_cases.update_settings(
        uow, ledger.clock, program_id(), changes, principal().actor, g.request_id))
    return json_response(ProgramOut().dump(program_dict(program)))


@blp.route("/program/changes", methods=["GET"])
@blp.response(200, ProgramChanges)
@requires("admin", "finance")
def program_changes() -> Response:
    """Every settings change, newest first: who, when, before and after."""
    items = read(lambda uow: use_cases.settings_changes(uow, program_id()))
    return json_response(ProgramChanges().dump({"items": items}))

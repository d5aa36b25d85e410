"""Programs, their settings and their API keys."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..domain.accounts import STANDARD_HOUSE_ACCOUNTS
from ..domain.errors import ApiKeyNotFound, ApiKeyRevoked, ImmutableSetting, ProgramAlreadyCreated, ProgramNotFound
from ..domain.programs import ROLES, Program, ProgramSettings
from ..domain.ids import new_id
from .ports import ApiKey, UnitOfWork

IMMUTABLE_SETTINGS = ("currency",)


def hash_secret(secret: str) -> str:
    """SHA-256: API keys are 256-bit random values, so a slow password hash would buy nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once


@dataclass(frozen=True, slots=True)
class CreatedProgram:
    program: Program
    keys: dict[str, IssuedKey]


def _issue_key(uow: UnitOfWork, clock: Clock, program_id: str, role: str, name: str | None) -> IssuedKey:
    secret = f"llk_{secrets.token_urlsafe(32)}"
    key = ApiKey(id=new_id("key"), program_id=program_id, role=role, name=name, prefix=secret[:12],
                 created_at=clock.now(), last_used_at=None, revoked_at=None, replaced_by=None)
    uow.api_keys.add(key, hash_secret(secret))
    return IssuedKey(key=key, secret=secret)


def create_program(uow: UnitOfWork, clock: Clock, settings: ProgramSettings,
                   idempotency_key: str | None = None) -> CreatedProgram:
    """A program with its house accounts and one API key per role. Keys are shown only here."""
    creation_hash = hash_secret(f"program-creation:{idempotency_key}") if idempotency_key else None
    if creation_hash:
        existing = uow.programs.get_by_creation_key(creation_hash)
        if existing:
            raise ProgramAlreadyCreated(f"program {existing.id} was already created with this Idempotency-Key",
                                        program_id=existing.id)
    program = Program(id=new_id("prg"), settings=settings, created_at=clock.now())
    uow.programs.add(program, creation_hash)
    uow.ledger.ensure_house_accounts(program.id, STANDARD_HOUSE_ACCOUNTS)
    keys = {role: _issue_key(uow, clock, program.id, role, f"{role} key") for role in ROLES}
    return CreatedProgram(program=program, keys=keys)


def get_program(uow: UnitOfWork, program_id: str) -> Program:
    program = uow.programs.get(program_id)
    if program is None:
        raise ProgramNotFound()
    return program


def update_settings(uow: UnitOfWork, clock: Clock, program_id: str, changes: dict[str, Any],
                    actor: str, request_id: str | None) -> Program:
    """Apply a validated merge patch; recorded with who, when, before and after. Later requests see it."""
    program = get_program(uow, program_id)
    for name in IMMUTABLE_SETTINGS:
        if name in changes and changes[name] != getattr(program.settings, name):
            raise ImmutableSetting(f"{name} cannot be changed after the program is created")
    after = program.settings.merged(changes)
    if after != program.settings:
        uow.programs.save_settings(program_id, program.settings, after, clock.now(), actor, request_id)
    return Program(id=program.id, settings=after, created_at=program.created_at)


def create_api_key(uow: UnitOfWork, clock: Clock, program_id: str, role: str, name: str | None) -> IssuedKey:
    return _issue_key(uow, clock, program_id, role, name)


def rotate_api_key(uow: UnitOfWork, clock: Clock, program_id: str, key_id: str) -> IssuedKey:
    """A new key with the same role and name; the old one is revoked at once."""
    old = uow.api_keys.get(program_id, key_id)
    if old is None:
        raise ApiKeyNotFound()
    if old.revoked_at is not None:
        raise ApiKeyRevoked("a revoked key cannot be rotated")
    issued = _issue_key(uow, clock, program_id, old.role, old.name)
    uow.api_keys.revoke(old.id, clock.now(), replaced_by=issued.key.id)
    return issued


def revoke_api_key(uow: UnitOfWork, clock: Clock, program_id: str, key_id: str) -> ApiKey:
    key = uow.api_keys.get(program_id, key_id)
    if key is None:
        raise ApiKeyNotFound()
    if key.revoked_at is None:
        uow.api_keys.revoke(key.id, clock.now())
    return uow.api_keys.get(program_id, key_id)


def settings_changes(uow: UnitOfWork, program_id: str) -> list[dict[str, Any]]:
    """The audit trail of settings changes, newest first."""
    return uow.programs.changes(program_id)


def list_api_keys(uow: UnitOfWork, program_id: str) -> list[ApiKey]:
    return uow.api_keys.list(program_id)

"""Idempotent writes: the Idempotency-Key, the natural key, and bounded retries.

Order of checks (ARCHITECTURE.md §2): the Idempotency-Key, then the natural key, then
business rules. The key claims and the business write share one database transaction,
so a concurrent duplicate waits for the first to commit and then replays its answer.
Natural keys are claimed only by successful writes; under an Idempotency-Key a
business-rule failure is stored and replayed too. The natural key's claim travels with the
write's first statement (on PostgreSQL the customer's lock call takes it, one round trip less),
and a refusal raised in Python before that statement still checks the claim first, so the order
of checks holds.
"""
from __future__ import annotations

import random
from contextlib import nullcontext
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from ..domain.errors import (
    BusinessRuleViolation, DuplicateNaturalKey, IdempotencyKeyReused, LedgerError, Unavailable,
)
from ..clock import Clock
from .ports import ClaimTaken, ClaimTicket, IdempotencyClaim, StoredAnswer, UnitOfWork

T = TypeVar("T")

MAX_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class WriteRequest:
    program_id: str
    fingerprint: str
    idempotency_key: str | None = None
    natural_key: tuple[str, str] | None = None  # (kind, id), e.g. ("order", "A-1001")
    # What a natural key already claimed by another request means; default: 409 duplicate_{kind}.
    on_conflict: Callable[[str, str], Exception] | None = None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    answer: StoredAnswer
    replayed: bool


def with_retries(uow_factory: Callable[..., UnitOfWork], fn: Callable[[UnitOfWork], T],
                 is_retryable: Callable[[BaseException], bool]) -> T:
    """Run `fn` in a fresh write unit of work, again on deadlocks and lock timeouts (bounded)."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            with uow_factory(write=True) as uow:
                return fn(uow)
        except Exception as exc:  # noqa: BLE001
            if not is_retryable(exc):
                raise
            if attempt == MAX_ATTEMPTS - 1:
                raise Unavailable() from exc
            time.sleep(min(0.2, 0.005 * 2**attempt) * random.random())
    raise AssertionError("unreachable")


def transact(uow_factory: Callable[..., UnitOfWork], action: Callable[[UnitOfWork], T],
             is_retryable: Callable[[BaseException], bool] | None = None) -> T:
    """One committed database transaction around `action`, retried on conflicts (those that
    `is_retryable` names; with None, never)."""

    def fn(uow: UnitOfWork) -> T:
        result = action(uow)
        uow.commit()
        return result

    return with_retries(uow_factory, fn, is_retryable or (lambda exc: False))


def run_write(
    uow_factory: Callable[..., UnitOfWork],
    clock: Clock,
    request: WriteRequest,
    action: Callable[[UnitOfWork], T],
    render: Callable[[T], StoredAnswer],
    render_error: Callable[[BusinessRuleViolation], StoredAnswer],
    is_retryable: Callable[[BaseException], bool] = lambda exc: False,
) -> WriteOutcome:
    """Run `action` exactly once: replay an earlier answer, or book and store a new one."""
    return with_retries(
        uow_factory, lambda uow: _attempt(uow, clock, request, action, render, render_error), is_retryable)


def _attempt(uow: UnitOfWork, clock: Clock, request: WriteRequest, action, render, render_error) -> WriteOutcome:  # noqa: ANN001
    now = clock.now()
    header_record: int | None = None
    if request.idempotency_key is not None:
        claim = uow.idempotency.claim(request.program_id, "header", request.idempotency_key, request.fingerprint, now)
        if isinstance(claim, IdempotencyClaim):
            return _replay(claim, request.fingerprint, IdempotencyKeyReused(
                "this Idempotency-Key was used for another request; use a new key"))
        header_record = claim
    completed: list[int] = []  # the claims that get the answer, written in one statement at the end
    # The savepoint lets a refused business rule be stored under the header key without its writes.
    try:
        with uow.savepoint() if header_record is not None else nullcontext():
            natural_record: int | None = None
            ticket: ClaimTicket | None = None
            try:
                if request.natural_key is not None:
                    # Sent with the action's first statement (PostgreSQL: the customer's lock takes it),
                    # which raises ClaimTaken, before doing anything, if the key was claimed before.
                    ticket = uow.idempotency.claim_later(request.program_id, *request.natural_key,
                                                         request.fingerprint, now)
                result = action(uow)
                if ticket is not None:
                    natural_record = ClaimTaken.unless_new(ticket.result())  # sent now if no statement has
            except ClaimTaken as taken:
                return _replay(taken.claim, request.fingerprint, _conflict(request))  # a header claim rolls back
            except LedgerError:
                # Refused in Python before any statement sent the claim: an earlier claim still answers.
                if ticket is not None and isinstance(earlier := ticket.result(), IdempotencyClaim):
                    return _replay(earlier, request.fingerprint, _conflict(request))
                raise
            answer = render(result)
            if natural_record is not None:
                completed.append(natural_record)  # a refusal rolls this claim back with the savepoint
    except BusinessRuleViolation as error:
        if header_record is None:
            raise
        answer = render_error(error)
    if header_record is not None:
        completed.append(header_record)
    if completed:
        uow.idempotency.complete(tuple(completed), answer)
    uow.commit()
    return WriteOutcome(answer=answer, replayed=False)


def _conflict(request: WriteRequest) -> Exception:
    kind, key = request.natural_key or ("", "")
    return (request.on_conflict or DuplicateNaturalKey)(kind, key)


def _replay(claim: IdempotencyClaim, fingerprint: str, mismatch: Exception) -> WriteOutcome:
    if claim.fingerprint != fingerprint:
        raise mismatch
    if claim.answer is None:  # only possible if a claim committed without an answer: never by run_write
        raise Unavailable("the first request with this key has not finished")
    return WriteOutcome(answer=claim.answer, replayed=True)

"""How long idempotency records are kept.

ARCHITECTURE.md §2 asks that keys be kept at least 24 hours; by default they are kept forever. An
operator who wants the table bounded runs `ledger jobs purge-keys --older-than-days N` (N >= 1), which
deletes Idempotency-Key records created more than N days ago. Natural keys (order, refund, redemption,
event, adjustment ids) are never purged: they are what keeps a late retry from booking twice, so a
retry under a purged header key still replays through its natural key.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

from ..clock import Clock
from .writes import transact


def purge_idempotency_keys(uow_factory, clock: Clock, older_than_days: int, batch: int = 1000,  # noqa: ANN001
                           is_retryable: Callable[[BaseException], bool] | None = None) -> int:
    """Delete header-key records created before now - `older_than_days` (at least 1); returns how many.

    Walks the records by id, `batch` at a time, one transaction each, and stops at the first batch
    with nothing older than the cutoff (ids follow creation, so the rest is newer; a record created
    out of order by a few milliseconds waits for the next run)."""
    if older_than_days < 1:
        raise ValueError("idempotency keys are kept at least 24 hours: purge only keys 1 or more days old")
    before = clock.now() - timedelta(days=older_than_days)
    deleted, after_id = 0, 0
    while True:
        count, oldest, last_id = transact(
            uow_factory, lambda uow, after_id=after_id: uow.idempotency.purge_header_keys(before, after_id, batch),
            is_retryable)
        deleted += count
        if last_id is None or oldest >= before:
            return deleted
        after_id = last_id

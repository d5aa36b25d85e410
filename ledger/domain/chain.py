"""Hash chains that make any change to booked history evident.

Each customer has one chain over every entry of the customer's transactions (house legs
included), in `seq` order: link = sha256(previous link + "\\n" + canonical content), where the
content covers the entry and its transaction's header (type, reference, actor, times,
description, details). The first link's previous link is the empty string. A program-level
seal hashes every customer's head (and the previous seal), so that rewriting a whole chain
after the seal is evident too.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Iterable


def instant(value: datetime) -> str:
    """An instant as canonical text: UTC, microseconds, `Z`."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def transaction_header(*, transaction_id: str, type: str, reference_kind: str, reference_id: str, actor: str,
                       request_id: str | None, occurred_at: datetime, recorded_at: datetime, description: str,
                       details: dict[str, Any]) -> str:
    return json.dumps([transaction_id, type, reference_kind, reference_id, actor, request_id, instant(occurred_at),
                       instant(recorded_at), description, details], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def entry_content(header: str, *, account: str, asset: str, amount: int, balance_after: int | None,
                  recorded_at: datetime) -> str:
    return json.dumps([header, account, asset, amount, balance_after, instant(recorded_at)],
                      separators=(",", ":"), ensure_ascii=False)


def link(previous: str | None, content: str) -> str:
    return hashlib.sha256(f"{previous or ''}\n{content}".encode()).hexdigest()


def seal_digest(previous_digest: str | None, heads: Iterable[tuple[int, str]]) -> str:
    """Digest over (customer key, head link) pairs in key order, chained to the previous seal."""
    h = hashlib.sha256((previous_digest or "").encode())
    for key, head in sorted(heads):
        h.update(f"\n{key}:{head}".encode())
    return h.hexdigest()

"""Opaque list cursors: base64url of the last sort key and a hash of the filters they were made for."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from .errors import ApiProblem


def _canonical(value: Any) -> str:
    """Instants in UTC, so the same instant written with another offset makes the same cursor."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return str(value)


def _filters_hash(filters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=_canonical).encode()).hexdigest()[:16]


def encode_cursor(last_key: int, filters: dict[str, Any]) -> str:
    raw = json.dumps({"k": last_key, "f": _filters_hash(filters)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, filters: dict[str, Any]) -> int | None:
    if cursor is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = data["k"]
        if not isinstance(key, int) or isinstance(key, bool) or data["f"] != _filters_hash(filters):
            raise ValueError
        return key
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise ApiProblem(400, "invalid_cursor", "Invalid cursor",
                         "the cursor is malformed or was made for other filters") from None


def encode_position(position: tuple[int, int], filters: dict[str, Any]) -> str:
    """A cursor for a (writing transaction, seq) position."""
    raw = json.dumps({"p": list(position), "f": _filters_hash(filters)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(cursor: str | None, filters: dict[str, Any]) -> tuple[int, int] | None:
    if cursor is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = data["p"]
        if (set(data) != {"p", "f"} or not isinstance(position, list) or len(position) != 2 or data["f"] != _filters_hash(filters)
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in position)):
            raise ValueError
        return position[0], position[1]
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise ApiProblem(400, "invalid_cursor", "Invalid cursor",
                         "the cursor is malformed or was made for other filters") from None

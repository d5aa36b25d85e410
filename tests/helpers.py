"""Assertions shared by the API tests."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlmodel import SQLModel

import ledger.storage.tables  # noqa: F401  (registers every table)

TABLES = tuple(sorted(SQLModel.metadata.tables))


def row_counts(app: Any) -> dict[str, int]:
    """Rows per table, every table of the schema: the strongest 'nothing written' check (updates aside)."""
    with app.extensions["ledger"].engines.read.connect() as conn:
        return {table: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() for table in TABLES}


def assert_problem(response: Any, status: int, code: str, field: str | None = None) -> dict:
    """An RFC 9457 problem with our `code`; a validation_error lists `{field, message}` (naming `field`)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json", response.headers.get("Content-Type")
    body = json.loads(response.get_data(as_text=True))
    for key in ("type", "title", "status", "detail", "code"):
        assert key in body, (key, body)
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["status"] == status
    assert body["code"] == code, body
    if code == "validation_error":
        assert isinstance(body.get("errors"), list) and body["errors"], body
        for error in body["errors"]:
            assert set(error) >= {"field", "message"}, error
            assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], (field, body)
    return body


def ledger_entries(client: Any, program: Any) -> list[dict]:
    """Every ledger entry of the program, read as finance (one page: tests stay under 500 entries)."""
    response = client.get("/v1/ledger/entries?limit=500", headers=program.headers("finance"))
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_json()
    assert page["next_cursor"] is None
    return page["items"]


def all_entries(client: Any, program: Any, role: str = "finance", **filters: Any) -> list[dict]:
    """Every ledger entry matching `filters` (the /v1/ledger/entries query), read page by page."""
    out: list[dict] = []
    cursor = None
    while True:
        query = {**filters, "limit": 500, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/ledger/entries", query_string=query, headers=program.headers(role))
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        out += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def transaction_legs(client: Any, program: Any, transaction_id: str) -> dict[str, int]:
    """A transaction's entries summed per account."""
    legs: dict[str, int] = {}
    for entry in ledger_entries(client, program):
        if entry["transaction_id"] == transaction_id:
            legs[entry["account"]] = legs.get(entry["account"], 0) + entry["amount"]
    return legs


def account_total(client: Any, program: Any, account: str) -> int:
    return sum(e["amount"] for e in ledger_entries(client, program) if e["account"] == account)

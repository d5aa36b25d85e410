"""The ledger itself, for finance: entries in seq order."""
from __future__ import annotations

from dataclasses import asdict

from flask import Response

from ledger.services import queries

from ..cursors import decode_cursor, encode_cursor
from ..http import Blueprint, json_response, program_id, read, requires
from ..schemas.common import PageArgs
from ..schemas.ledger import EntriesPage

blp = Blueprint("ledger", __name__, url_prefix="/v1/ledger", description="Ledger entries (finance, admin)")


@blp.route("/entries", methods=["GET"])
@blp.arguments(PageArgs, location="query", as_kwargs=True)
@blp.response(200, EntriesPage)
@blp.alt_response(400, response="BAD_REQUEST")
@requires("admin", "finance")
def list_entries(limit: int, cursor: str | None = None) -> Response:
    """Every entry of the program in `seq` order, oldest first."""
    filters: dict = {}
    after = decode_cursor(cursor, filters)
    entries = read(lambda uow: queries.ledger_entries(uow, program_id(), after, limit + 1))
    next_cursor = encode_cursor(entries[limit - 1].seq, filters) if len(entries) > limit else None
    return json_response(EntriesPage().dump({"items": [asdict(e) for e in entries[:limit]],
                                             "next_cursor": next_cursor}))

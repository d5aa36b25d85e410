"""The ledger itself, for finance: entries, transactions, exports, the trial balance, verification
and closed periods."""
from __future__ import annotations

from typing import Any, Iterator

import marshmallow as ma
from flask import Response, current_app, stream_with_context

from ledger.services import books, corrections
from ledger.services.books import jsonable
from ledger.services.verify import verify_ledger

from ..cursors import decode_position, encode_position
from ..http import (
    Blueprint, booking_context, idempotent_write, json_response, program_id, read, requires, with_balances,
)
from ..schemas.finance import (
    AsOfArgs, EntriesPage, EntryListArgs, ExportArgs, PeriodList, PeriodOut, PeriodPath, ReversalOut, ReverseIn,
    TransactionOut, TransactionPath, TrialBalanceOut, VerifyOut,
)

blp = Blueprint("ledger", __name__, url_prefix="/v1", description="The ledger for finance: entries, transactions, "
                "exports, trial balance, verification, closed periods and reversals")

FINANCE_READERS = ("admin", "finance")
def _filters(args: dict[str, Any]) -> dict[str, Any]:
    keys = ("account", "customer_id", "asset", "type", "reference_kind", "reference_id", "from", "to")
    return {k: args[k] for k in keys if args.get(k) is not None}


@blp.route("/ledger/entries", methods=["GET"])
@blp.arguments(EntryListArgs, location="query", unknown=ma.RAISE)
@blp.response(200, EntriesPage)
@blp.alt_response(400, response="BAD_REQUEST")
@requires(*FINANCE_READERS)
def list_entries(args: dict) -> Response:
    """Entries, filtered by account (a trailing `*` matches a prefix), customer, asset, transaction
    type, reference and recorded time [`from`, `to`). Pages never skip an entry that commits after
    the reader passed it: on PostgreSQL the order is (writing transaction, seq) and a page holds only
    entries whose writers had all finished (below the reader snapshot's xmin); on SQLite, where
    writers commit one at a time, it is seq."""
    filters = _filters(args)
    limit = args["limit"]
    after = decode_position(args.get("cursor"), filters)
    rows = read(lambda uow: books.entries_page(uow, program_id(), filters, after, limit + 1))
    page = rows[:limit]
    resume = encode_position((page[-1]["xid"] or 0, page[-1]["seq"]), filters) if page else args.get("cursor")
    return json_response(EntriesPage().dump({"items": page, "next_cursor": resume if len(rows) > limit else None,
                                             "resume_cursor": resume}))


@blp.route("/ledger/export", methods=["GET"])
@blp.arguments(ExportArgs, location="query", unknown=ma.RAISE)
@blp.response(200, description="NDJSON (one entry per line) or CSV with a header row, streamed",
              content_type="application/x-ndjson")
@blp.alt_response(400, response="BAD_REQUEST")
@requires(*FINANCE_READERS)
def export(args: dict) -> Response:
    """Every matching entry in seq order, streamed from a server-side cursor in constant memory:
    `format=ndjson` (default) or `csv`. Same filters as /v1/ledger/entries."""
    filters, fmt, pid = _filters(args), args["format"], program_id()
    ledger = current_app.extensions["ledger"]

    def generate() -> Iterator[str]:
        with ledger.uow(write=False) as uow:
            yield from books.export_chunks(books.export_entries(uow, pid, filters), fmt)

    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = Response(stream_with_context(generate()), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="ledger-{pid}.{"csv" if fmt == "csv" else "ndjson"}"'
    return response


@blp.route("/ledger/trial-balance", methods=["GET"])
@blp.arguments(AsOfArgs, location="query", unknown=ma.RAISE)
@blp.response(200, TrialBalanceOut)
@requires(*FINANCE_READERS)
def trial_balance(args: dict) -> Response:
    """Every house account's balance, and the customer accounts summed per bucket
    (`customer/*/{asset}/{bucket}`), as of `as_of` (recorded time, default now): each asset sums
    to zero. Answered from the latest daily roll-up plus the entries since."""
    as_of = args.get("as_of") or books.just_after_now(current_app.extensions["ledger"].clock)
    tb = read(lambda uow: books.trial_balance(uow, program_id(), as_of))
    return json_response(TrialBalanceOut().dump(tb.to_dict()))


@blp.route("/ledger/verify", methods=["GET"])
@blp.response(200, VerifyOut)
@requires(*FINANCE_READERS)
def verify() -> Response:
    """Recompute this program's hash chains and seals, check that every transaction balances, the
    ledger sums to zero and every cached balance equals its entries. `ok: true` and
    `first_broken_seq: null` when intact; otherwise the first entry named by any check."""
    report = read(lambda uow: verify_ledger(uow, program_id()))
    return json_response(VerifyOut().dump(jsonable(report.to_dict())))


@blp.route("/ledger/periods/<period>/close", methods=["POST"])
@blp.arguments(PeriodPath, location="path", as_kwargs=True)
@blp.response(201, PeriodOut)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("finance")
def close_period(period: str) -> Response:
    """Close a month that has ended in the program's timezone: its trial balance and liability
    report at the month's end are stored as an immutable snapshot. Repeating the call replays the
    first answer. 422 `period_not_ended`."""
    ledger = current_app.extensions["ledger"]
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: books.close_period(uow, ledger.clock, pid, period, ctx),
                            PeriodOut(), 201, natural_key=("period", period))


@blp.route("/ledger/periods", methods=["GET"])
@blp.response(200, PeriodList)
@requires(*FINANCE_READERS)
def list_periods() -> Response:
    """The closed months, oldest first, with their snapshots."""
    rows = read(lambda uow: uow.books.periods(program_id()))
    return json_response(PeriodList().dump({"items": rows}))


@blp.route("/ledger/periods/<period>", methods=["GET"])
@blp.arguments(PeriodPath, location="path", as_kwargs=True)
@blp.response(200, PeriodOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*FINANCE_READERS)
def get_period(period: str) -> Response:
    """A closed month's snapshot. 404 `period_not_found` if it is not closed."""
    row = read(lambda uow: books.get_period(uow, program_id(), period))
    return json_response(PeriodOut().dump(row))


@blp.route("/transactions/<transaction_id>", methods=["GET"])
@blp.arguments(TransactionPath, location="path", as_kwargs=True)
@blp.response(200, TransactionOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*FINANCE_READERS)
def get_transaction(transaction_id: str) -> Response:
    """A transaction with its entries, actor, reason, request id, and its reversal if any."""
    tx = read(lambda uow: books.get_transaction(uow, program_id(), transaction_id))
    return json_response(TransactionOut().dump(tx))


@blp.route("/transactions/<transaction_id>/reverse", methods=["POST"])
@blp.arguments(TransactionPath, location="path", as_kwargs=True)
@blp.arguments(ReverseIn)
@blp.response(201, ReversalOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@requires("finance")
def reverse(body: dict, transaction_id: str) -> Response:
    """Book the exact mirror of a transaction, into the buckets where the value sits now, at most
    once: a second call (even a concurrent one) is 409 `already_reversed`. 409 `has_dependents`
    (with `dependents`) while later transactions build on it; 409 `not_reversible` for a type with
    its own undo (void a hold; refunds, closures and reversals are final); 422
    `insufficient_balance` when the customer no longer has what the mirror takes back."""
    ledger = current_app.extensions["ledger"]
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: corrections.reverse_transaction(uow, ledger.clock, pid, transaction_id,
                                                                        body["reason"], ctx),
                            with_balances(ReversalOut), 201)

"""Reading the books: entries, transactions, exports, balances and the trial balance as of any
instant, daily roll-ups, closed periods and chain seals.

`as_of`, `from` and `to` are recorded time (when the ledger booked an entry): a balance as of t
sums every entry recorded before t, so the balance as of `to` is the balance as of `from` plus
the entries recorded in [from, to).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from ..clock import Clock
from ..domain.accounts import ASSETS, BUCKETS, STANDARD_HOUSE_ACCOUNTS, parse_customer_account
from ..domain.errors import CustomerNotFound, PeriodNotEnded, PeriodNotFound, Unavailable, ValidationFailed
from .ports import BookingContext, UnitOfWork

ROLLUP_MARGIN = timedelta(minutes=5)  # a day is rolled up this long after it ends
CUSTOMER_LINES = tuple(f"customer/*/{asset}/{bucket}" for asset in ASSETS for bucket in BUCKETS)


def just_after_now(clock: Clock) -> datetime:
    """The default `as_of`/`to`: everything recorded up to and including now (they exclude their instant)."""
    return clock.now() + timedelta(microseconds=1)


def customer_pk_of(uow: UnitOfWork, program_id: str, customer_id: str) -> int:
    customer = uow.customers.get(program_id, customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer {customer_id!r} in this program")
    return customer.pk


def customer_balances_as_of(uow: UnitOfWork, program_id: str, customer_id: str,
                            as_of: datetime) -> dict[str, dict[str, int]]:
    """{asset: {bucket: balance}} from the balance after the last entry recorded before `as_of`."""
    pk = customer_pk_of(uow, program_id, customer_id)
    out: dict[str, dict[str, int]] = {str(a): {str(b): 0 for b in BUCKETS} for a in ASSETS}
    for path, balance in uow.books.customer_balances_as_of(pk, as_of).items():
        _cid, asset, bucket = parse_customer_account(path)
        out[asset][bucket] = balance
    return out


@dataclass(frozen=True)
class TrialBalance:
    as_of: datetime
    lines: list[dict[str, Any]]  # {account, asset, balance, accounts (customer lines)}
    totals: dict[str, int]  # per asset: always zero in a sound ledger
    rollup_as_of: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "accounts": self.lines, "totals": self.totals, "rollup_as_of": self.rollup_as_of}


def trial_balance(uow: UnitOfWork, program_id: str, as_of: datetime) -> TrialBalance:
    """Every house account's balance, and the customer accounts summed per bucket, as of `as_of`:
    the latest daily roll-up before it plus the entries recorded since (at most a day of them)."""
    rollup_at, rows = uow.books.rollup_before(program_id, as_of)
    balances: dict[tuple[str, str], int] = {(r["account"], r["asset"]): r["balance"] for r in rows}
    for r in uow.books.sums_between(program_id, rollup_at, as_of):
        key = (r["account"], r["asset"])
        balances[key] = balances.get(key, 0) + r["total"]
    for path, asset in list(STANDARD_HOUSE_ACCOUNTS) + uow.books.house_accounts(program_id):
        balances.setdefault((path, asset), 0)
    for line in CUSTOMER_LINES:
        balances.setdefault((line, line.split("/")[2]), 0)
    counts = {r["account"]: r["accounts"] for r in rows if r["account"].startswith("customer/")}
    for account, n in uow.books.account_counts(program_id, rollup_at, as_of).items():
        counts[account] = counts.get(account, 0) + n
    lines = [{"account": account, "asset": asset, "balance": balance,
              "accounts": counts.get(account, 0) if account.startswith("customer/") else None}
             for (account, asset), balance in sorted(balances.items(), key=_line_order)]
    totals = {str(a): 0 for a in ASSETS}
    for (account, asset), balance in balances.items():
        totals[asset] = totals.get(asset, 0) + balance
    return TrialBalance(as_of=as_of, lines=lines, totals=totals, rollup_as_of=rollup_at)


def _line_order(item: tuple[tuple[str, str], int]) -> tuple:
    (account, asset), _ = item
    return (asset, not account.startswith("customer/"), account)


def roll_up(uow: UnitOfWork, program_id: str, now: datetime, max_days: int = 400) -> int:
    """Store the trial balance at the end (UTC midnight) of each day that has entries since the last
    roll-up, once that day ended at least ROLLUP_MARGIN ago, each from the previous roll-up plus the
    day's entries. Days without entries need none: the entries after the latest roll-up before any
    instant then all fall on that instant's own day. Returns how many were stored."""
    stored = 0
    waited = False
    while stored < max_days:
        latest = uow.books.latest_rollup_at(program_id)
        first = uow.books.first_entry_at(program_id, since=latest)
        if first is None:
            return stored
        day = datetime.combine(first.astimezone(timezone.utc).date() + timedelta(days=1), time(), timezone.utc)
        if day + ROLLUP_MARGIN > now:
            return stored
        if not waited:
            if not uow.books.wait_for_older_writers():
                raise Unavailable("older writers are still running; roll-ups wait for them")
            waited = True
        store_rollup(uow, program_id, day)
        stored += 1
    return stored


def store_rollup(uow: UnitOfWork, program_id: str, at: datetime) -> None:
    """The trial balance at `at` (the previous roll-up plus the entries since) stored as a roll-up."""
    tb = trial_balance(uow, program_id, at)
    uow.books.add_rollup(program_id, at, [
        {"account": line["account"], "asset": line["asset"], "balance": line["balance"],
         "accounts": line["accounts"] or 0} for line in tb.lines if line["balance"] != 0 or line["accounts"]])


# -- periods ---------------------------------------------------------------------------------------

def month_bounds(period: str, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a YYYY-MM month in the program's timezone, as UTC instants."""
    try:
        year, month = (int(p) for p in period.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise ValidationFailed([{"field": "period", "message": "a month as YYYY-MM"}]) from None
    following = date(year + month // 12, month % 12 + 1, 1)
    zone = ZoneInfo(tz)
    return (datetime.combine(first, time(), zone).astimezone(timezone.utc),
            datetime.combine(following, time(), zone).astimezone(timezone.utc))


def close_period(uow: UnitOfWork, clock: Clock, program_id: str, period: str, ctx: BookingContext) -> dict[str, Any]:
    """Close a month that has ended (program timezone): store its trial balance and liability
    report as they stood at its end. Bookings are recorded at the clock's now, so nothing booked
    later can change these figures; a later business event dated in the month is flagged late."""
    from .reports import liability_report

    program = uow.programs.get(program_id)
    starts_at, ends_at = month_bounds(period, program.settings.timezone)
    now = clock.now()
    if now < ends_at:
        raise PeriodNotEnded(f"{period} ends at {ends_at.isoformat()} ({program.settings.timezone})")
    if not uow.books.wait_for_older_writers():
        raise Unavailable("transactions begun before the close are still running; retry")
    tb = trial_balance(uow, program_id, ends_at)
    liability = liability_report(uow, program_id, ends_at, start=starts_at)
    row = {"program_id": program_id, "period": period, "starts_at": starts_at, "ends_at": ends_at,
           "closed_at": now, "actor": ctx.actor, "request_id": ctx.request_id,
           "trial_balance": jsonable(tb.to_dict()), "liability": jsonable(liability)}
    uow.books.add_period(**row)
    return row


def get_period(uow: UnitOfWork, program_id: str, period: str) -> dict[str, Any]:
    row = uow.books.period(program_id, period)
    if row is None:
        raise PeriodNotFound(f"{period} is not closed")
    return row


def jsonable(value: Any) -> Any:
    """Instants as ISO 8601 text, recursively: what JSON columns and JSON answers hold."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# -- entries and transactions ----------------------------------------------------------------------

def entries_page(uow: UnitOfWork, program_id: str, filters: dict[str, Any], after: tuple[int, int] | None,
                 limit: int) -> list[dict[str, Any]]:
    return uow.books.entries_page(program_id, _resolve_customer(uow, program_id, filters), after, limit)


def export_entries(uow: UnitOfWork, program_id: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return uow.books.export(program_id, _resolve_customer(uow, program_id, filters))


EXPORT_COLUMNS = ("seq", "transaction_id", "transaction_type", "customer_id", "reference_kind", "reference_id",
                  "account", "asset", "amount", "balance_after", "occurred_at", "recorded_at", "actor", "request_id",
                  "description", "chain_hash")


def export_chunks(rows: Iterator[dict[str, Any]], fmt: str, batch: int = 500) -> Iterator[str]:
    """NDJSON (one entry per line) or CSV with a header row, `batch` entries per chunk: memory stays
    flat however many rows stream through."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        for n, row in enumerate(rows, 1):
            writer.writerow(["" if row.get(c) is None else jsonable(row.get(c)) for c in EXPORT_COLUMNS])
            if n % batch == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
        return
    lines: list[str] = []
    for row in rows:
        lines.append(json.dumps(jsonable({c: row.get(c) for c in EXPORT_COLUMNS}), ensure_ascii=False,
                                separators=(",", ":")))
        if len(lines) == batch:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


def _resolve_customer(uow: UnitOfWork, program_id: str, filters: dict[str, Any]) -> dict[str, Any]:
    """`customer_id` as the customer's key; an unknown customer gets a key no transaction has (-1)."""
    if not filters.get("customer_id"):
        return filters
    customer = uow.customers.get(program_id, filters["customer_id"])
    return {**filters, "customer_pk": customer.pk if customer else -1}


def get_transaction(uow: UnitOfWork, program_id: str, transaction_id: str) -> dict[str, Any]:
    from ..domain.errors import TransactionNotFound

    tx = uow.books.transaction(program_id, transaction_id)
    if tx is None:
        raise TransactionNotFound(f"no transaction {transaction_id!r} in this program")
    details = tx.get("details") or {}
    tx["reason"] = details.get("reason")
    tx["late"] = bool(uow.books.late_transactions(program_id, None, None, transaction_id=transaction_id))
    return tx

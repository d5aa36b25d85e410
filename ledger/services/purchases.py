"""Recording a purchase and accruing what it earns.

Books, per asset that earns something: Dr `issued/purchase` (points) or `funding/purchase`
(cashback), Cr the customer's `pending` bucket while that asset's hold period is above
zero, else `available`. A purchase that earns nothing is recorded with no transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..clock import Clock
from ..domain import describe
from ..domain.accounts import Asset, Bucket, purchase_source
from ..domain.customers import Balances
from ..domain.earning import PurchaseLine, check_lines_reconcile, purchase_earnings
from ..domain.errors import CurrencyMismatch, PurchaseNotFound, ValidationFailed
from ..domain.transactions import Reference, TransactionDraft, transfer
from .customers import require_customer
from .ports import BookingContext, UnitOfWork
from .queries import balances_of
from .lots import available_points, credit_lot
from .upkeep import prepare_customer_for_write

FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class PurchaseCommand:
    """A validated purchase. Construction checks what needs no state: lines reconcile, time not ahead."""

    order_id: str
    customer_id: str
    amount: int
    currency: str
    now: datetime
    occurred_at: datetime | None = None
    channel: str | None = None
    tax: int = 0
    shipping: int = 0
    lines: tuple[PurchaseLine, ...] | None = None

    def __post_init__(self) -> None:
        if self.lines is not None:
            check_lines_reconcile(self.amount, self.lines, self.tax, self.shipping)
        if self.occurred_at is not None and self.occurred_at > self.now + FUTURE_TOLERANCE:
            raise ValidationFailed([{"field": "occurred_at", "message": "must not be in the future"}])


@dataclass(frozen=True, slots=True)
class PurchaseResult:
    order_id: str
    customer_id: str
    transaction_id: str | None
    amount: int
    currency: str
    points_earned: int
    cashback_earned: int
    points_status: str | None
    cashback_status: str | None
    points_available_at: datetime | None
    cashback_available_at: datetime | None
    occurred_at: datetime
    recorded_at: datetime
    balances: Balances
    lines: list[dict] | None = field(default=None)
    channel: str | None = None
    tax: int = 0
    shipping: int = 0


def record_purchase(uow: UnitOfWork, clock: Clock, program_id: str, cmd: PurchaseCommand,
                    ctx: BookingContext) -> PurchaseResult:
    now = clock.now()
    program = uow.programs.get(program_id)
    settings = program.settings
    if cmd.currency != settings.currency:
        raise CurrencyMismatch(f"this program's currency is {settings.currency}, not {cmd.currency}")
    customer = require_customer(uow, program_id, cmd.customer_id, lock=True)
    prepare_customer_for_write(uow, now, program, customer, ctx)
    points_available_before = available_points(uow, customer)

    occurred_at = (cmd.occurred_at or now).astimezone(timezone.utc)
    earned = purchase_earnings(cmd.amount, settings)
    hold_days = {Asset.POINTS: settings.points_hold_days, Asset.CASHBACK: settings.cashback_hold_days}
    amounts = {Asset.POINTS: earned.points, Asset.CASHBACK: earned.cashback}
    release_at = {asset: occurred_at + timedelta(days=days) if days > 0 else None for asset, days in hold_days.items()}

    postings = []
    for asset, amount in amounts.items():
        if amount > 0:
            bucket = Bucket.PENDING if release_at[asset] else Bucket.AVAILABLE
            postings += transfer(asset, purchase_source(asset), customer.account(asset, bucket), amount)

    transaction_id = None
    if postings:
        draft = TransactionDraft(
            type="purchase_accrual",
            reference=Reference("order", cmd.order_id),
            postings=tuple(postings),
            occurred_at=occurred_at,
            description=describe.purchase_accrual(
                cmd.order_id, earned.points, earned.cashback, settings.currency,
                release_at[Asset.POINTS] if earned.points else None,
                release_at[Asset.CASHBACK] if earned.cashback else None),
            metadata={"amount": cmd.amount, **earn_rates(settings)},
        )
        transaction_id = uow.ledger.post(program_id, draft, ctx, now, customer).id

    purchase_pk = uow.purchases.add(
        program_id=program_id, order_id=cmd.order_id, customer_pk=customer.pk, transaction_id=transaction_id,
        amount=cmd.amount, currency=cmd.currency, tax=cmd.tax, shipping=cmd.shipping, channel=cmd.channel,
        lines=[_line_dict(line) for line in cmd.lines] if cmd.lines is not None else None,
        points_earned=earned.points, cashback_earned=earned.cashback, occurred_at=occurred_at, recorded_at=now,
        earn_rates=earn_rates(settings),
    )
    for asset, amount in amounts.items():
        if amount > 0 and release_at[asset]:
            uow.releases.add(program_id=program_id, customer_pk=customer.pk, purchase_id=purchase_pk,
                             asset=asset.value, amount=amount, release_at=release_at[asset])
    if earned.points > 0:
        pending = release_at[Asset.POINTS] is not None
        credit_lot(uow, settings, customer, earned.points, transaction_id, "purchase", now,
                   available_at=release_at[Asset.POINTS] or now,
                   available_before=None if pending else points_available_before)

    def status(asset: Asset) -> str | None:
        if amounts[asset] == 0:
            return None
        return "pending" if release_at[asset] else "available"

    return PurchaseResult(
        order_id=cmd.order_id, customer_id=cmd.customer_id, transaction_id=transaction_id, amount=cmd.amount,
        currency=cmd.currency, points_earned=earned.points, cashback_earned=earned.cashback,
        points_status=status(Asset.POINTS), cashback_status=status(Asset.CASHBACK),
        points_available_at=(release_at[Asset.POINTS] or now) if earned.points else None,
        cashback_available_at=(release_at[Asset.CASHBACK] or now) if earned.cashback else None,
        occurred_at=occurred_at, recorded_at=now, balances=balances_of(uow, settings.currency, customer, now, include_due=False),
        lines=[_line_dict(line) for line in cmd.lines] if cmd.lines is not None else None,
        channel=cmd.channel, tax=cmd.tax, shipping=cmd.shipping,
    )


def earn_rates(settings) -> dict[str, int]:  # noqa: ANN001
    """The rates an accrual used; a refund recomputes what the order keeps with these, not today's."""
    return {"points_per_unit": settings.points_per_unit, "unit_amount": settings.unit_amount,
            "cashback_rate_bps": settings.cashback_rate_bps}


def _line_dict(line: PurchaseLine) -> dict:
    return {"sku": line.sku, "category": line.category, "quantity": line.quantity,
            "unit_price": line.unit_price, "discount": line.discount}


def get_purchase(uow: UnitOfWork, program_id: str, order_id: str) -> dict:
    purchase = uow.purchases.get(program_id, order_id)
    if purchase is None:
        raise PurchaseNotFound(f"no purchase with order_id {order_id!r}")
    return purchase

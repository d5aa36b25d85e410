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
from ..domain.customers import Balances, Customer
from ..domain.programs import Program
from ..domain.earning import EarningResult, OrderToEarn, PurchaseLine, check_lines_reconcile
from ..domain.earning_config import EarningConfig
from ..domain.expiry import lot_expires_at
from ..domain.ids import new_id
from ..domain.errors import CurrencyMismatch, PurchaseNotFound, ValidationFailed
from ..domain.transactions import Reference, TransactionDraft, transfer
from . import achievements, referrals
from .customers import enrolled
from .ports import BookingContext, TransactionToBook, UnitOfWork
from .queries import balances_of
from .lots import available_points, debt_repaid_by, new_lot, repay_debt_from_lot
from .earning import config_for, earn, paid_with_rewards, record_awards
from .tiers import upgrade_after_purchase
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
    referred_by: str | None = None  # a referral code, on the referee's first purchase

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
    config_version: int = 0
    trace: dict | None = None
    badges_unlocked: list[dict] = field(default_factory=list)
    referral_rewards: list[dict] = field(default_factory=list)


def _order(cmd: PurchaseCommand, paid: int) -> OrderToEarn:
    return OrderToEarn(amount=cmd.amount, tax=cmd.tax, shipping=cmd.shipping, channel=cmd.channel,
                       lines=cmd.lines, paid=paid)


def _release_at(settings, occurred_at: datetime) -> dict[str, datetime | None]:  # noqa: ANN001
    """When each asset a purchase earns becomes available: None where its hold period is zero."""
    hold_days = {Asset.POINTS: settings.points_hold_days, Asset.CASHBACK: settings.cashback_hold_days}
    return {asset: occurred_at + timedelta(days=days) if days > 0 else None for asset, days in hold_days.items()}


def _program_and_customer(uow: UnitOfWork, program_id: str, cmd: PurchaseCommand,
                          lock: bool, now: datetime | None = None) -> tuple[Program, Customer]:
    """The program and the customer a purchase is for, refused for another currency or a blocked customer.
    Locking, `now` is the instant the write's upkeep will be checked at (see `lock_with_program`)."""
    if lock:
        program, customer = uow.customers.lock_with_program(program_id, cmd.customer_id, now)
    else:
        program, customer = uow.programs.get(program_id), uow.customers.get(program_id, cmd.customer_id)
    if cmd.currency != program.settings.currency:
        raise CurrencyMismatch(f"this program's currency is {program.settings.currency}, not {cmd.currency}")
    customer = enrolled(customer, cmd.customer_id)
    customer.refuse_unless_active("earn")
    return program, customer


def record_purchase(uow: UnitOfWork, clock: Clock, program_id: str, cmd: PurchaseCommand,
                    ctx: BookingContext) -> PurchaseResult:
    now = clock.now()
    program, customer = _program_and_customer(uow, program_id, cmd, lock=True, now=now)
    settings = program.settings
    if cmd.referred_by:
        customer = referrals.register(uow, now, program, customer, cmd.referred_by)
    due = prepare_customer_for_write(uow, now, program, customer, ctx)
    points_available_before = available_points(uow, customer)

    occurred_at = (cmd.occurred_at or now).astimezone(timezone.utc)
    config = config_for(uow, program)
    paid = paid_with_rewards(uow, program, cmd.order_id, customer) if due.has_captures else 0
    result, facts = earn(uow, program, config, customer, _order(cmd, paid), occurred_at, lock_budgets=True)
    amounts = {Asset.POINTS: result.points, Asset.CASHBACK: result.cashback}
    release_at = _release_at(settings, occurred_at)

    postings = []
    for asset, amount in amounts.items():
        if amount > 0:
            bucket = Bucket.PENDING if release_at[asset] else Bucket.AVAILABLE
            postings += transfer(asset, purchase_source(asset), customer.account(asset, bucket), amount)

    transaction_id = new_id("txn") if postings else None
    accrual = None
    if postings:
        draft = TransactionDraft(
            type="purchase_accrual",
            reference=Reference("order", cmd.order_id),
            postings=tuple(postings),
            occurred_at=occurred_at,
            description=describe.purchase_accrual(
                cmd.order_id, result.points, result.cashback, settings.currency,
                release_at[Asset.POINTS] if result.points else None,
                release_at[Asset.CASHBACK] if result.cashback else None),
            metadata={"amount": cmd.amount, "config_version": config.version, **earn_rates(settings)},
        )
        accrual = TransactionToBook(draft, ctx, now, customer, transaction_id)

    releases = [{"asset": asset.value, "amount": amount, "release_at": release_at[asset]}
                for asset, amount in amounts.items() if amount > 0 and release_at[asset]]
    lot = None
    if result.points > 0:
        points_available_at = release_at[Asset.POINTS] or now
        lot = new_lot(settings, customer, result.points, transaction_id, "purchase", now, points_available_at,
                      lot_expires_at(settings, points_available_at))
    # The accrual is booked with the purchase row: one round trip less under the customer's lock.
    # The ids are read only where needed: the write may then go with the stored answer (PostgreSQL).
    written = uow.purchases.add_with_releases_and_lot(dict(
        program_id=program_id, order_id=cmd.order_id, customer_pk=customer.pk, transaction_id=transaction_id,
        amount=cmd.amount, currency=cmd.currency, tax=cmd.tax, shipping=cmd.shipping, channel=cmd.channel,
        lines=[_line_dict(line) for line in cmd.lines] if cmd.lines is not None else None,
        points_earned=result.points, cashback_earned=result.cashback, occurred_at=occurred_at, recorded_at=now,
        earn_rates=earn_rates(settings), config_version=config.version or None,
        earning={"paid": paid, "facts": facts.to_dict(), "trace": result.trace, "base_settings": base_settings(settings)},
    ), releases, lot, accrual)
    available_before = None if release_at[Asset.POINTS] is not None else points_available_before
    if lot is not None and debt_repaid_by(result.points, available_before):
        repay_debt_from_lot(uow, written.lot_id, result.points, transaction_id, available_before)
    record_awards(uow, program, config, customer, written, result, occurred_at)
    upgrade_after_purchase(uow, now, program, config, customer, written, ctx)
    rewards = (referrals.qualify(uow, now, program, customer, written.purchase_pk, cmd.order_id, cmd.amount, occurred_at, ctx)
               if customer.referred_by_pk is not None else [])
    badges = achievements.check_after(uow, now, program, config, customer, occurred_at, "purchases", ctx)

    return _result(cmd, result, config, release_at, occurred_at, now, transaction_id,
                   balances_of(uow, settings.currency, customer, now, include_due=False),
                   badges_unlocked=badges, referral_rewards=rewards)


def simulate_purchase(uow: UnitOfWork, clock: Clock, program_id: str, cmd: PurchaseCommand) -> PurchaseResult:
    """What `record_purchase` would answer for `cmd` now, with its trace; writes nothing and locks nothing.

    `balances` are the customer's balances as they would be after the purchase."""
    now = clock.now()
    program, customer = _program_and_customer(uow, program_id, cmd, lock=False)
    settings = program.settings
    occurred_at = (cmd.occurred_at or now).astimezone(timezone.utc)
    config = config_for(uow, program)
    paid = paid_with_rewards(uow, program, cmd.order_id, customer)
    result, _facts = earn(uow, program, config, customer, _order(cmd, paid), occurred_at, lock_budgets=False)
    amounts = {Asset.POINTS: result.points, Asset.CASHBACK: result.cashback}
    release_at = _release_at(settings, occurred_at)
    balances = balances_of(uow, settings.currency, customer, now, include_due=True)
    for asset, amount in amounts.items():
        balances = balances.plus(asset, "pending" if release_at[asset] else "available", amount)
    return _result(cmd, result, config, release_at, occurred_at, now, None, balances)


def _result(cmd: PurchaseCommand, result: EarningResult, config: EarningConfig, release_at: dict,  # noqa: ANN001
            occurred_at: datetime, now: datetime, transaction_id: str | None, balances: Balances,
            **extra: list[dict]) -> PurchaseResult:
    """The purchase answer, the same for a recorded purchase and a simulated one."""
    earned = {Asset.POINTS: result.points, Asset.CASHBACK: result.cashback}

    def status(asset: Asset) -> str | None:
        if earned[asset] == 0:
            return None
        return "pending" if release_at[asset] else "available"

    return PurchaseResult(
        order_id=cmd.order_id, customer_id=cmd.customer_id, transaction_id=transaction_id, amount=cmd.amount,
        currency=cmd.currency, points_earned=result.points, cashback_earned=result.cashback,
        points_status=status(Asset.POINTS), cashback_status=status(Asset.CASHBACK),
        points_available_at=(release_at[Asset.POINTS] or now) if result.points else None,
        cashback_available_at=(release_at[Asset.CASHBACK] or now) if result.cashback else None,
        occurred_at=occurred_at, recorded_at=now, balances=balances,
        lines=[_line_dict(line) for line in cmd.lines] if cmd.lines is not None else None,
        channel=cmd.channel, tax=cmd.tax, shipping=cmd.shipping, config_version=config.version, trace=result.trace,
        **extra,
    )


def earn_rates(settings) -> dict[str, int]:  # noqa: ANN001
    """The rates an accrual used; a refund recomputes what the order keeps with these, not today's."""
    return {"points_per_unit": settings.points_per_unit, "unit_amount": settings.unit_amount,
            "cashback_rate_bps": settings.cashback_rate_bps}


def base_settings(settings) -> dict:  # noqa: ANN001
    """The earning base an accrual used; a refund recomputes with it, not today's."""
    return {"earn_on_tax": settings.earn_on_tax, "earn_on_shipping": settings.earn_on_shipping,
            "excluded_categories": list(settings.excluded_categories), "excluded_skus": list(settings.excluded_skus)}


def _line_dict(line: PurchaseLine) -> dict:
    return {"sku": line.sku, "category": line.category, "quantity": line.quantity,
            "unit_price": line.unit_price, "discount": line.discount}


def get_purchase(uow: UnitOfWork, program_id: str, order_id: str) -> dict:
    purchase = uow.purchases.get(program_id, order_id)
    if purchase is None:
        raise PurchaseNotFound(f"no purchase with order_id {order_id!r}")
    earning = purchase.get("earning") or {}
    return {**purchase, "trace": earning.get("trace"), "config_version": purchase.get("config_version") or 0}

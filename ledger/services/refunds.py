"""Refunds that claw back exactly what was earned and return what paid for the order.

After refunds, the order keeps what its remaining part would earn, computed as at the purchase
(the rules version, rates, earning base and customer facts recorded on it), never more than it
earned; each refund claws back the difference from what the order kept before, so refunding a
whole order reverses exactly what it earned. Value still `pending` is reversed first, then the
part of the order's own lot that already expired (booked Dr `expired`, not charged again), then
`available`. Points and cashback that paid for the order (captured
redemptions carrying its order_id) come back: cumulatively floor(paid * R / A).
What cannot be clawed back goes negative in `available` (allow_negative) or is written off.

One refund books one transaction: every entry or none.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction
from typing import Any

from ..clock import Clock
from ..domain import describe
from ..domain.accounts import ASSETS, Asset, Bucket, house_account, purchase_source
from ..domain.customers import Balances
from ..domain.earning import EarningFacts, OrderToEarn, PurchaseLine, compute_earnings
from ..domain.errors import LinesMismatch, OrderNotFound, RefundExceedsPurchase
from ..domain.expiry import reissued_expiry
from ..domain.programs import Program
from ..domain.transactions import Posting, Reference, TransactionDraft
from .earning import config_at
from .lots import consume_lots, credit_lot
from .ports import BookingContext, UnitOfWork
from .queries import balances_of
from .achievements import recheck_after_refund
from .referrals import reverse_after_refund
from .rewards import debit_available, reverse_pending
from .tiers import undo_upgrade_after_refund
from .upkeep import prepare_customer_for_write


@dataclass(frozen=True, slots=True)
class RefundCommand:
    order_id: str
    refund_id: str
    amount: int | None = None
    lines: tuple[tuple[str, int], ...] | None = None  # (sku, quantity refunded)
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund_id: str
    order_id: str
    customer_id: str
    transaction_id: str | None
    amount: int
    points_reversed: int
    cashback_reversed: int
    points_restored: int
    cashback_restored: int
    points_uncollected: int
    cashback_uncollected: int
    recorded_at: datetime
    balances: Balances


def kept_after(purchase: dict[str, Any], asset: str, remaining_amount: int) -> int:
    """What a purchase recorded before earning rules existed keeps of `asset` once only
    `remaining_amount` of it is left, at its accrual's rates."""
    rates = purchase["earn_rates"] or {}
    if asset == Asset.POINTS:
        earned = purchase["points_earned"]
        would = remaining_amount * rates.get("points_per_unit", 0) // max(rates.get("unit_amount", 1), 1)
    else:
        earned = purchase["cashback_earned"]
        would = remaining_amount * rates.get("cashback_rate_bps", 0) // 10_000
    return min(earned, would)


def kept_by_order(uow: UnitOfWork, program: Program, purchase: dict[str, Any], refunds: list[tuple[int, Any]]) -> dict[str, int]:
    """What the order keeps once `refunds` ((amount, lines) pairs) are taken from it: the same
    computation as the purchase, with the rules version, rates and facts recorded on it, on what is
    left; never more than it earned. Lines refunded by SKU leave those lines' share; a refund by
    amount takes from what is left of the order in proportion."""
    earning = purchase.get("earning")
    refunded = sum(amount for amount, _ in refunds)
    if not earning:
        remaining = purchase["amount"] - refunded
        return {asset: kept_after(purchase, asset, remaining) for asset in ASSETS}
    config = config_at(uow, program.id, purchase.get("config_version"))
    rates = purchase["earn_rates"] or {}
    settings = replace(program.settings, **{k: v for k, v in rates.items() if k in _RATE_FIELDS},
                       **{k: v for k, v in (earning.get("base_settings") or {}).items()})
    lines = tuple(PurchaseLine(**line) for line in purchase["lines"]) if purchase["lines"] is not None else None
    order = OrderToEarn(amount=purchase["amount"], tax=purchase["tax"], shipping=purchase["shipping"],
                        channel=purchase["channel"], lines=lines, paid=earning.get("paid", 0))
    keep, line_keep = Fraction(1), None
    if lines is not None:
        returned: dict[str, int] = {}
        by_amount = 0
        for amount, refund_lines in refunds:
            if refund_lines is None:
                by_amount += amount
            else:
                for sku, quantity in refund_lines:
                    returned[sku] = returned.get(sku, 0) + quantity
        bought: dict[str, int] = {}
        for line in lines:
            bought[line.sku] = bought.get(line.sku, 0) + line.quantity
        # Every line of a SKU keeps the share of the SKU's quantity not returned, as refund amounts
        # are computed per SKU.
        line_keep = [Fraction(bought[line.sku] - min(returned.get(line.sku, 0), bought[line.sku]), bought[line.sku])
                     for line in lines]
        # Refunds by amount come out of what the line refunds left, in proportion.
        left = sum((line.net * k for line, k in zip(lines, line_keep)), Fraction(0)) + order.tax + order.shipping
        if by_amount:
            keep = (left - by_amount) / left if left > 0 else Fraction(0)
    else:
        keep = Fraction(purchase["amount"] - refunded, purchase["amount"])
    facts = EarningFacts.from_dict(earning["facts"])
    tier = config.ladder.get(facts.tier_id) if config.ladder.tiers else None
    result = compute_earnings(order, config, settings, facts, keep=max(keep, Fraction(0)), line_keep=line_keep,
                              tier=tier)
    return {Asset.POINTS: min(purchase["points_earned"], result.points),
            Asset.CASHBACK: min(purchase["cashback_earned"], result.cashback)}


_RATE_FIELDS = ("points_per_unit", "unit_amount", "cashback_rate_bps")


def _refund_amount(purchase: dict[str, Any], cmd: RefundCommand, previous: list[dict[str, Any]]) -> int:
    refunded_before = sum(r["amount"] for r in previous)
    if cmd.lines is None:
        amount = cmd.amount if cmd.amount is not None else purchase["amount"] - refunded_before
    else:
        bought = {}
        for line in purchase["lines"] or []:
            quantity, net = bought.get(line["sku"], (0, 0))
            bought[line["sku"]] = (quantity + line["quantity"],
                                   net + line["quantity"] * line["unit_price"] - line.get("discount", 0))
        returned: dict[str, int] = {}
        for refund in previous:
            for sku, quantity in refund["lines"] or []:
                returned[sku] = returned.get(sku, 0) + quantity
        amount = 0
        for sku, quantity in cmd.lines:
            if sku not in bought:
                raise RefundExceedsPurchase(f"order {cmd.order_id} has no line with sku {sku!r}", sku=sku)
            total_quantity, net = bought[sku]
            returned[sku] = returned.get(sku, 0) + quantity
            if returned[sku] > total_quantity:
                raise RefundExceedsPurchase(
                    f"{returned[sku]} of sku {sku!r} refunded in all, but only {total_quantity} were bought", sku=sku)
            amount += quantity * net // total_quantity
        if cmd.amount is not None and cmd.amount != amount:
            raise LinesMismatch(f"the refunded lines come to {amount}, not the amount {cmd.amount}",
                                expected=cmd.amount, actual=amount)
    if amount <= 0 or refunded_before + amount > purchase["amount"]:
        raise RefundExceedsPurchase(
            f"order {cmd.order_id} was {purchase['amount']}; {refunded_before} already refunded, "
            f"{purchase['amount'] - refunded_before} left", refundable=purchase["amount"] - refunded_before)
    return amount


def record_refund(uow: UnitOfWork, clock: Clock, program_id: str, cmd: RefundCommand,
                  ctx: BookingContext) -> RefundResult:
    now = clock.now()
    program = uow.programs.get(program_id)
    settings = program.settings
    purchase = uow.purchases.get(program_id, cmd.order_id)
    if purchase is None:
        raise OrderNotFound(f"no purchase with order_id {cmd.order_id!r}")
    customer = uow.customers.lock_by_pk(purchase["customer_pk"])
    prepare_customer_for_write(uow, now, program, customer, ctx)
    previous = uow.refunds.for_purchase(purchase["id"])
    amount = _refund_amount(purchase, cmd, previous)
    refunded_before = sum(r["amount"] for r in previous)
    balances = dict(uow.ledger.customer_balances(customer))

    postings: list[Posting] = []
    points_available_before_restore = balances[customer.account(Asset.POINTS, Bucket.AVAILABLE)]
    # Paid value comes back first, so a clawback can take back from it before anything is written off.
    restored: dict[str, int] = {}
    paid: dict[str, int] = {asset: 0 for asset in ASSETS}
    # Only what this order's customer paid comes back to them: a redemption another customer captured
    # against the same order id is not theirs to receive.
    captures = [r for r in uow.redemptions.captured_for_order(program_id, cmd.order_id)
                if r["customer_pk"] == customer.pk]
    for redemption in captures:
        paid[redemption["asset"]] += redemption["captured_amount"]
    # Restored points keep the latest expiry of the lots their redemptions spent; if that has
    # passed, they are reissued for reissue_days, or (restored_after_expiry "expire") they go from
    # `redeemed` straight to `expired`: never spendable, never repaying a debt, never held.
    points_settlements = [r["settle_transaction_id"] for r in captures if r["asset"] == Asset.POINTS]
    expiries = [lot["expires_at"] for lot in uow.lots.consumed_by(points_settlements)] if points_settlements else []
    restore_expires_at = None if not expiries or None in expiries else max(expiries)
    restore_lapsed = restore_expires_at is not None and restore_expires_at <= now
    if restore_lapsed and settings.restored_after_expiry == "reissue":
        restore_expires_at, restore_lapsed = reissued_expiry(settings, now), False
    # A closed membership's balances were settled at closure: a later refund restores and claws back nothing.
    closed = customer.status == "closed"
    for asset in ASSETS:
        before = sum(r[f"{asset}_restored"] for r in previous)
        after = paid[asset] * (refunded_before + amount) // purchase["amount"]
        restored[asset] = 0 if closed else after - before
        if restored[asset] > 0:
            postings.append(Posting(house_account(asset, "redeemed"), asset, -restored[asset]))
            if asset == Asset.POINTS and restore_lapsed:
                postings.append(Posting(house_account(asset, "expired"), asset, restored[asset]))
                continue
            postings.append(Posting(customer.account(asset, Bucket.AVAILABLE), asset, restored[asset]))
            balances[customer.account(asset, Bucket.AVAILABLE)] += restored[asset]

    reversed_: dict[str, int] = {}
    from_pending: dict[str, int] = {}
    collected: dict[str, int] = {}
    uncollected: dict[str, int] = {}
    previous_pairs = [(r["amount"], r["lines"]) for r in previous]
    # What the order still holds is what it earned less what refunds took back: so refunds never
    # take back more than was earned, even where the rules are not monotone (a reducing
    # multiplier behind a minimum spend).
    kept_before = {asset: purchase[f"{asset}_earned"] - sum(r[f"{asset}_reversed"] for r in previous)
                   for asset in ASSETS}
    if closed or (purchase["transaction_id"] and uow.corrections.reversal_of(purchase["transaction_id"])):
        kept_before = {asset: 0 for asset in ASSETS}  # closed, or finance reversed the accrual: nothing to claw back
    kept_now = kept_by_order(uow, program, purchase, previous_pairs + [(amount, cmd.lines)])
    unexpired = 0
    for asset in ASSETS:
        to_reverse = max(kept_before[asset] - kept_now[asset], 0)
        reversed_[asset] = to_reverse
        if to_reverse <= 0:
            continue
        take_pending = reverse_pending(uow, uow.releases.unreleased_for_purchase(purchase["id"]), asset, to_reverse)
        if asset == Asset.POINTS and purchase["transaction_id"] and to_reverse > take_pending:
            # The order's own lot first: the part of it that already expired goes back from `expired`
            # to where it was issued from, so the customer is not charged for it twice.
            expired = uow.expiry.lot_consumed_by_type(purchase["transaction_id"], "points_expiry")
            unexpired = min(to_reverse - take_pending, expired - sum(r["points_unexpired"] for r in previous))
            unexpired = max(unexpired, 0)
        postings.append(Posting(purchase_source(asset), asset, to_reverse))
        if take_pending:
            postings.append(Posting(customer.account(asset, Bucket.PENDING), asset, -take_pending))
        if asset == Asset.POINTS and unexpired:
            postings.append(Posting(house_account(asset, "expired"), asset, -unexpired))
        rest = to_reverse - take_pending - (unexpired if asset == Asset.POINTS else 0)
        from_pending[asset] = take_pending
        collected[asset], uncollected[asset] = debit_available(postings, balances, customer, asset, rest,
                                                               settings.clawback_policy)

    transaction_id = None
    if postings:
        draft = TransactionDraft(
            type="refund", reference=Reference("refund", cmd.refund_id), postings=tuple(postings),
            occurred_at=cmd.occurred_at or now,
            description=describe.refund(cmd.order_id, reversed_, restored, settings.currency,
                                        restored_expired=restored[Asset.POINTS] if restore_lapsed else 0),
            metadata={"order_id": cmd.order_id, "amount": amount, "clawback_policy": settings.clawback_policy},
        )
        transaction_id = uow.ledger.post(program_id, draft, ctx, now, customer).id
        if restored[Asset.POINTS] > 0 and not restore_lapsed:
            credit_lot(uow, settings, customer, restored[Asset.POINTS], transaction_id, "refund_restore", now,
                       available_at=now, available_before=points_available_before_restore,
                       expires_at=restore_expires_at)
        own_lot = [purchase["transaction_id"]] if purchase["transaction_id"] else []
        consume_lots(uow, customer, from_pending.get(Asset.POINTS, 0) + collected.get(Asset.POINTS, 0),
                     transaction_id, now, prefer_transactions=own_lot)

    uow.refunds.add(
        program_id=program_id, refund_id=cmd.refund_id, purchase_id=purchase["id"], amount=amount,
        lines=[list(line) for line in cmd.lines] if cmd.lines is not None else None,
        points_reversed=reversed_[Asset.POINTS], cashback_reversed=reversed_[Asset.CASHBACK],
        points_restored=restored[Asset.POINTS], cashback_restored=restored[Asset.CASHBACK],
        points_uncollected=uncollected.get(Asset.POINTS, 0), cashback_uncollected=uncollected.get(Asset.CASHBACK, 0),
        transaction_id=transaction_id, occurred_at=cmd.occurred_at or now, recorded_at=now,
        points_unexpired=unexpired)
    undo_upgrade_after_refund(uow, now, program, customer, purchase, ctx)
    if customer.referred_by_pk is not None:
        reverse_after_refund(uow, now, program, customer, purchase, purchase["amount"] - refunded_before - amount, ctx)
    recheck_after_refund(uow, now, program, customer, ctx)
    return RefundResult(
        refund_id=cmd.refund_id, order_id=cmd.order_id, customer_id=customer.customer_id,
        transaction_id=transaction_id, amount=amount,
        points_reversed=reversed_[Asset.POINTS], cashback_reversed=reversed_[Asset.CASHBACK],
        points_restored=restored[Asset.POINTS], cashback_restored=restored[Asset.CASHBACK],
        points_uncollected=uncollected.get(Asset.POINTS, 0), cashback_uncollected=uncollected.get(Asset.CASHBACK, 0),
        recorded_at=now, balances=balances_of(uow, settings.currency, customer, now, include_due=False))

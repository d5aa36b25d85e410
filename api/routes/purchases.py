"""Purchases: record one (and what it earns), read one."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, current_app

from ledger.domain.earning import PurchaseLine
from ledger.services import purchases as use_cases
from ledger.services import refunds
from ledger.services.ports import BookingContext
from ledger.services.writes import WriteOutcome, WriteRequest

from ..http import (
    Blueprint, HandBuilt, answer_response, booking_context, fingerprint, from_dataclasses, idempotent_write,
    json_response, program_id, read, requires, run_idempotent_write,
)
from ..schemas.engagement import BadgeUnlocked, ReferralRewardOut
from ..schemas.purchases import OrderPath, PurchaseCreate, PurchaseDetail, PurchaseOut, PurchaseSimulation
from ..schemas.redemptions import RefundCreate, RefundOut
from .customers import balances_body
from .programs import ALL_ROLES

blp = Blueprint("purchases", __name__, url_prefix="/v1/purchases", description="Purchases and what they earn")


_BADGES = BadgeUnlocked(many=True)
_REFERRAL_REWARDS = ReferralRewardOut(many=True)


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def purchase_body(result: use_cases.PurchaseResult) -> dict:
    """Exactly what the `PurchaseOut` schema dumps, built directly: the generic dump was about a tenth
    of a purchase's Python time. tests/api/test_fast_paths.py holds the two equal."""
    return {
        "order_id": result.order_id, "customer_id": result.customer_id, "transaction_id": result.transaction_id,
        "amount": result.amount, "currency": result.currency, "points_earned": result.points_earned,
        "cashback_earned": result.cashback_earned, "points_status": result.points_status,
        "cashback_status": result.cashback_status, "points_available_at": _instant(result.points_available_at),
        "cashback_available_at": _instant(result.cashback_available_at),
        "occurred_at": result.occurred_at.isoformat(), "recorded_at": result.recorded_at.isoformat(),
        "balances": balances_body(result.balances), "config_version": result.config_version,
        "badges_unlocked": _BADGES.dump(result.badges_unlocked) if result.badges_unlocked else [],
        "referral_rewards": _REFERRAL_REWARDS.dump(result.referral_rewards) if result.referral_rewards else [],
    }


@blp.route("", methods=["POST"])
@blp.arguments(PurchaseCreate)
@blp.response(201, PurchaseOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("storefront")
def create_purchase(body: dict) -> Response:
    """Record a purchase and accrue what it earns, in one call.

    `amount` is the gross order total in minor units. What it earns is computed per line (see
    `POST /v1/purchases/simulate` and docs/DESIGN.md): the earning base leaves out excluded
    categories and SKUs, tax and shipping if the program says so, and the part paid with points or
    cashback; rules, campaigns and the tier multiply or add; the order's total is floored once.
    Without rules: floor((amount - paid with rewards) * points_per_unit / unit_amount) points and
    floor(... * cashback_rate_bps / 10000) cashback. Each goes to `pending` while its hold period is
    above zero, else to `available`. The trace is kept and shown at `GET /v1/purchases/{order_id}`.
    Idempotent by `order_id` (and the Idempotency-Key header): a replay answers the first
    status and body with `Idempotent-Replayed: true`; the same order_id with another body is 409 `duplicate_order`.
    """
    ctx = booking_context()
    outcome = purchase_write(current_app.extensions["ledger"], program_id(), body, ctx, fingerprint())
    return answer_response(outcome.answer, outcome.replayed)


_PURCHASE_ANSWER = HandBuilt(purchase_body)


def purchase_write(ledger: Any, pid: str, body: dict, ctx: BookingContext, fingerprint_: str) -> WriteOutcome:
    """`create_purchase` without Flask's request (`api/fast_paths.py` answers the plain case with it):
    `body` as `PurchaseCreate` loaded it; the Idempotency-Key is the context's."""
    command = _command(body, ledger.clock.now())
    return run_idempotent_write(
        ledger, WriteRequest(program_id=pid, fingerprint=fingerprint_, idempotency_key=ctx.idempotency_key,
                             natural_key=("order", command.order_id)),
        lambda uow: use_cases.record_purchase(uow, ledger.clock, pid, command, ctx), _PURCHASE_ANSWER, 201,
        request_id=ctx.request_id)


@blp.route("/simulate", methods=["POST"])
@blp.arguments(PurchaseCreate)
@blp.response(200, PurchaseSimulation)
@blp.alt_response(404, response="NOT_FOUND")
@requires("storefront")
def simulate_purchase(body: dict) -> Response:
    """What `POST /v1/purchases` would answer for this body now, plus the `trace`: per line the
    base, each multiplier and the rounding; the bonuses; caps and budgets that applied. Writes
    nothing. `balances` are as they would be after the purchase; `transaction_id` is null.
    Exact values in the trace are fractions written n/d."""
    ledger = current_app.extensions["ledger"]
    command = _command(body, ledger.clock.now())
    result = read(lambda uow: use_cases.simulate_purchase(uow, ledger.clock, program_id(), command))
    return json_response(from_dataclasses(PurchaseSimulation).dump(result))


def _command(body: dict, now) -> use_cases.PurchaseCommand:  # noqa: ANN001
    lines = body.get("lines")
    return use_cases.PurchaseCommand(
        order_id=body["order_id"], customer_id=body["customer_id"], amount=body["amount"],
        currency=body["currency"], now=now, occurred_at=body.get("occurred_at"),
        channel=body.get("channel"), tax=body["tax"], shipping=body["shipping"],
        lines=tuple(PurchaseLine(**line) for line in lines) if lines is not None else None,
        referred_by=body.get("referred_by"),
    )


@blp.route("/<order_id>", methods=["GET"])
@blp.arguments(OrderPath, location="path", as_kwargs=True)
@blp.response(200, PurchaseDetail)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_purchase(order_id: str) -> Response:
    """A recorded purchase, what it earned, and the trace of how (null for purchases recorded
    before earning rules existed)."""
    purchase = read(lambda uow: use_cases.get_purchase(uow, program_id(), order_id))
    return json_response(PurchaseDetail().dump(purchase))


@blp.route("/<order_id>/refunds", methods=["POST"])
@blp.arguments(OrderPath, location="path", as_kwargs=True)
@blp.arguments(RefundCreate)
@blp.response(201, RefundOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("storefront")
def create_refund(body: dict, order_id: str) -> Response:
    """Refund part or all of an order: claws back what the refunded part earned (pending value
    first) and returns the points and cashback that paid for it, in one transaction.

    `amount` is the gross value returned; with `lines`, it is the sum over them of
    floor(quantity_refunded * (quantity * unit_price - discount) / quantity), and tax and shipping
    are refunded only through `amount`. Without either, the rest of the order is refunded.
    Errors: 422 `refund_exceeds_purchase`; 404 `order_not_found`; 409 `duplicate_refund`."""
    ledger = current_app.extensions["ledger"]
    lines = body.get("lines")
    cmd = refunds.RefundCommand(
        order_id=order_id, refund_id=body["refund_id"], amount=body.get("amount"),
        lines=tuple((line["sku"], line["quantity"]) for line in lines) if lines is not None else None,
        occurred_at=body.get("occurred_at"))
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: refunds.record_refund(uow, ledger.clock, pid, cmd, ctx),
                            from_dataclasses(RefundOut), 201, natural_key=("refund", cmd.refund_id))

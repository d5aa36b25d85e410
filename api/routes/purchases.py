"""Purchases: record one (and what it earns), read one."""
from __future__ import annotations

from dataclasses import asdict

from flask import Response, current_app

from ledger.domain.earning import PurchaseLine
from ledger.services import purchases as use_cases

from ..http import Blueprint, booking_context, idempotent_write, json_response, program_id, read, requires
from ..schemas.purchases import OrderPath, PurchaseCreate, PurchaseDetail, PurchaseOut
from .programs import ALL_ROLES

blp = Blueprint("purchases", __name__, url_prefix="/v1/purchases", description="Purchases and what they earn")


class _PurchaseAnswer(PurchaseOut):
    def dump(self, obj, *args, **kwargs):  # noqa: ANN001, ANN201
        return super().dump(asdict(obj), *args, **kwargs)


@blp.route("", methods=["POST"])
@blp.arguments(PurchaseCreate)
@blp.response(201, PurchaseOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("storefront")
def create_purchase(body: dict) -> Response:
    """Record a purchase and accrue what it earns, in one call.

    `amount` is the gross order total in minor units. Points earned =
    floor(amount * points_per_unit / unit_amount); cashback = floor(amount * cashback_rate_bps / 10000);
    each goes to `pending` while its hold period is above zero, else to `available`.
    Idempotent by `order_id` (and the Idempotency-Key header): a replay answers the first
    status and body with `Idempotent-Replayed: true`; the same order_id with another body is 409 `duplicate_order`.
    """
    ledger = current_app.extensions["ledger"]
    lines = body.get("lines")
    command = use_cases.PurchaseCommand(
        order_id=body["order_id"], customer_id=body["customer_id"], amount=body["amount"],
        currency=body["currency"], now=ledger.clock.now(), occurred_at=body.get("occurred_at"),
        channel=body.get("channel"), tax=body["tax"], shipping=body["shipping"],
        lines=tuple(PurchaseLine(**line) for line in lines) if lines is not None else None,
    )
    ctx = booking_context()
    pid = program_id()
    return idempotent_write(lambda uow: use_cases.record_purchase(uow, ledger.clock, pid, command, ctx),
                            _PurchaseAnswer(), 201, natural_key=("order", command.order_id))


@blp.route("/<order_id>", methods=["GET"])
@blp.arguments(OrderPath, location="view_args", as_kwargs=True)
@blp.response(200, PurchaseDetail)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_purchase(order_id: str) -> Response:
    """A recorded purchase and what it earned."""
    purchase = read(lambda uow: use_cases.get_purchase(uow, program_id(), order_id))
    return json_response(PurchaseDetail().dump(purchase))

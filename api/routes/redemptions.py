"""Checkout redemption: hold, capture, void, extend; and the checkout quote."""
from __future__ import annotations

from dataclasses import asdict

from flask import Response, current_app

from ledger.domain.earning import PurchaseLine, check_lines_reconcile
from ledger.domain.errors import RedemptionNotHeld
from ledger.services import redemptions as use_cases

from ..http import (
    Blueprint, booking_context, from_dataclasses, idempotent_write, json_response, program_id, read, requires,
)
from ..schemas.redemptions import (
    CaptureBody, EmptyBody, ExtendBody, HoldCreate, QuoteOut, QuoteRequest, RedemptionOut, RedemptionPath,
)
from .programs import ALL_ROLES

blp = Blueprint("redemptions", __name__, url_prefix="/v1", description="Paying with points or cashback at checkout")


def _not_held(kind: str, redemption_id: str) -> Exception:
    return RedemptionNotHeld(f"redemption {redemption_id!r} was already settled by another request")


@blp.route("/redemptions", methods=["POST"])
@blp.arguments(HoldCreate)
@blp.response(201, RedemptionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("storefront")
def hold(body: dict) -> Response:
    """Reserve points or cashback for a checkout: moves `amount` from available to reserved until
    `expires_at`. Capture it when the order completes, void it if payment fails; a lapsed hold
    returns to available by itself. Errors: 422 `insufficient_balance`, `below_min_redeem`,
    `exceeds_max_redeem_share`; 404 `customer_not_found`; 409 `duplicate_redemption`."""
    ledger = current_app.extensions["ledger"]
    cmd = use_cases.HoldCommand(**body)
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: use_cases.place_hold(uow, ledger.clock, pid, cmd, ctx), from_dataclasses(RedemptionOut), 201,
                            natural_key=("redemption", cmd.redemption_id))


@blp.route("/redemptions/<redemption_id>", methods=["GET"])
@blp.arguments(RedemptionPath, location="path", as_kwargs=True)
@blp.response(200, RedemptionOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires(*ALL_ROLES)
def get_redemption(redemption_id: str) -> Response:
    """A redemption's state and history."""
    ledger = current_app.extensions["ledger"]
    view = read(lambda uow: use_cases.get_redemption(uow, ledger.clock, program_id(), redemption_id))
    return json_response(from_dataclasses(RedemptionOut).dump(view))


@blp.route("/redemptions/<redemption_id>/capture", methods=["POST"])
@blp.arguments(RedemptionPath, location="path", as_kwargs=True)
@blp.arguments(CaptureBody, required=False)
@blp.response(200, RedemptionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("storefront")
def capture(body: dict, redemption_id: str) -> Response:
    """Spend `amount` of the hold (default all of it); the rest returns to available.
    The same capture repeated replays its answer; anything else once settled is 409
    `redemption_not_held`, after expiry 409 `hold_expired`; more than held is 422 `capture_exceeds_hold`."""
    ledger = current_app.extensions["ledger"]
    ctx, pid = booking_context(), program_id()
    return idempotent_write(
        lambda uow: use_cases.capture(uow, ledger.clock, pid, redemption_id, body.get("amount"), ctx),
        from_dataclasses(RedemptionOut), 200, natural_key=("settle", redemption_id), on_conflict=_not_held)


@blp.route("/redemptions/<redemption_id>/void", methods=["POST"])
@blp.arguments(RedemptionPath, location="path", as_kwargs=True)
@blp.arguments(EmptyBody, required=False)
@blp.response(200, RedemptionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("storefront")
def void(body: dict, redemption_id: str) -> Response:
    """Release the whole hold back to available (payment failed or the checkout was abandoned)."""
    ledger = current_app.extensions["ledger"]
    ctx, pid = booking_context(), program_id()
    return idempotent_write(lambda uow: use_cases.void(uow, ledger.clock, pid, redemption_id, ctx),
                            from_dataclasses(RedemptionOut), 200, natural_key=("settle", redemption_id), on_conflict=_not_held)


@blp.route("/redemptions/<redemption_id>/extend", methods=["POST"])
@blp.arguments(RedemptionPath, location="path", as_kwargs=True)
@blp.arguments(ExtendBody)
@blp.response(200, RedemptionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
@requires("storefront")
def extend(body: dict, redemption_id: str) -> Response:
    """Keep a held redemption for `ttl_seconds` more, counted from now."""
    from ..http import fingerprint

    ledger = current_app.extensions["ledger"]
    ctx, pid = booking_context(), program_id()
    return idempotent_write(
        lambda uow: use_cases.extend(uow, ledger.clock, pid, redemption_id, body["ttl_seconds"], ctx),
        from_dataclasses(RedemptionOut), 200, natural_key=("extend", f"{redemption_id}:{fingerprint()[:32]}"))


@blp.route("/checkout/quote", methods=["POST"])
@blp.arguments(QuoteRequest)
@blp.response(200, QuoteOut)
@blp.alt_response(404, response="NOT_FOUND")
@requires("storefront")
def checkout_quote(body: dict) -> Response:
    """How many points (and how much cashback) the customer may redeem on this order, and what
    the order would earn. Writes nothing."""
    ledger = current_app.extensions["ledger"]
    if body.get("lines") is not None:
        check_lines_reconcile(body["amount"], [PurchaseLine(**line) for line in body["lines"]],
                              body["tax"], body["shipping"])
    result = read(lambda uow: use_cases.quote(uow, ledger.clock, program_id(), body["customer_id"], body["amount"]))
    return json_response(QuoteOut().dump(asdict(result)))

"""Exceptions raised by the domain and the use cases.

Each class says when it is raised. `code` is the stable snake_case string a
client branches on; `status` is the HTTP status the API layer answers with.
A `BusinessRuleViolation` is an answer about state (stored and replayed under an
Idempotency-Key); a `RequestRejected` is refused before anything is looked up.
"""
from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base of every error the service reports to a client."""

    code = "ledger_error"
    status = 500
    title = "Ledger error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class RequestRejected(LedgerError):
    """The request itself is invalid; nothing was looked up or written."""

    status = 422


class ValidationFailed(RequestRejected):
    """Input failed validation; `errors` lists `{field, message}` pairs."""

    code = "validation_error"
    title = "Validation failed"

    def __init__(self, errors: list[dict[str, str]], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
        self.errors = errors


class IdempotencyKeyReused(RequestRejected):
    """The Idempotency-Key was first used with another method, path or body."""

    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with another request"


class BusinessRuleViolation(LedgerError):
    """The request is well formed but the ledger's state or rules refuse it."""

    status = 422


class CurrencyMismatch(BusinessRuleViolation):
    """A purchase names another currency than the program's."""

    code = "currency_mismatch"
    title = "Currency does not match the program"


class LinesMismatch(BusinessRuleViolation):
    """A purchase's lines, tax and shipping do not add up to its amount."""

    code = "lines_mismatch"
    title = "Lines do not reconcile with the amount"


class AmountTooLarge(BusinessRuleViolation):
    """A computed amount or balance would not fit a signed 64-bit integer."""

    code = "amount_too_large"
    title = "Amount too large"


class NotFound(BusinessRuleViolation):
    status = 404
    code = "not_found"
    title = "Not found"


class CustomerNotFound(NotFound):
    """No customer with this id is enrolled in the caller's program."""

    code = "customer_not_found"
    title = "Customer not found"


class RuleNotFound(NotFound):
    """No earning rule with this id in the program's current configuration."""

    code = "rule_not_found"
    title = "Rule not found"


class CampaignNotFound(NotFound):
    """No campaign with this id in the program's current configuration."""

    code = "campaign_not_found"
    title = "Campaign not found"


class EventRuleNotFound(NotFound):
    code = "event_rule_not_found"
    title = "Event rule not found"


class AchievementNotFound(NotFound):
    code = "achievement_not_found"
    title = "Achievement not found"


class CustomerBlocked(BusinessRuleViolation):
    """A blocked customer can neither earn nor redeem; their history stays readable."""

    code = "customer_blocked"
    title = "Customer blocked"


class UnknownReferralCode(BusinessRuleViolation):
    code = "unknown_referral_code"
    title = "Unknown referral code"


class SelfReferral(BusinessRuleViolation):
    """The code is the customer's own, or its owner shares the customer's normalised email or phone."""

    code = "self_referral"
    title = "Self-referral"


class CircularReferral(BusinessRuleViolation):
    """The code's owner was (directly or through others) referred by this customer."""

    code = "circular_referral"
    title = "Circular referral"


class RefereeAlreadyPurchased(BusinessRuleViolation):
    code = "referee_already_purchased"
    title = "Referee already purchased"


class ProgramNotFound(NotFound):
    code = "program_not_found"
    title = "Program not found"


class PurchaseNotFound(NotFound):
    code = "purchase_not_found"
    title = "Purchase not found"


class TransactionNotFound(NotFound):
    code = "transaction_not_found"
    title = "Transaction not found"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "API key not found"


class Conflict(BusinessRuleViolation):
    status = 409
    code = "conflict"
    title = "Conflict"


class DuplicateNaturalKey(Conflict):
    """A natural key (order_id, refund_id, ...) was already used with another body."""

    title = "Duplicate key with a different request"

    def __init__(self, kind: str, key: str) -> None:
        self.code = f"duplicate_{kind}"
        super().__init__(f"{kind}_id {key!r} was already used with a different request body", key=key)


class ProgramAlreadyCreated(Conflict):
    """POST /v1/programs repeated with the same Idempotency-Key: keys are never shown twice."""

    code = "program_already_created"
    title = "Program already created"


class ImmutableSetting(BusinessRuleViolation):
    code = "immutable_setting"
    title = "Setting cannot be changed"


class ApiKeyRevoked(Conflict):
    code = "api_key_revoked"
    title = "API key already revoked"


class Unavailable(LedgerError):
    """The database kept refusing (deadlock, lock timeout) after bounded retries."""

    status = 503
    code = "temporarily_unavailable"
    title = "Temporarily unavailable, retry with the same key"


class InvariantViolation(LedgerError):
    """A ledger invariant would break (unbalanced or zero entry): a bug, never a client error."""

    status = 500
    code = "invariant_violation"
    title = "Ledger invariant violated"


class InsufficientBalance(BusinessRuleViolation):
    """A hold asks for more than the customer has available."""

    code = "insufficient_balance"
    title = "Insufficient balance"


class BelowMinRedeem(BusinessRuleViolation):
    """A points hold is below the program's minimum or not a multiple of its step."""

    code = "below_min_redeem"
    title = "Below the minimum redemption or off the step"


class ExceedsMaxRedeemShare(BusinessRuleViolation):
    """A hold's value exceeds the share of `order_amount` the program lets points or cashback pay."""

    code = "exceeds_max_redeem_share"
    title = "Exceeds the share of the order that may be redeemed"


class CaptureExceedsHold(BusinessRuleViolation):
    code = "capture_exceeds_hold"
    title = "Capture exceeds the held amount"


class RedemptionNotFound(NotFound):
    code = "redemption_not_found"
    title = "Redemption not found"


class RedemptionNotHeld(Conflict):
    """Capture, void or extend of a redemption already captured or voided (other than an exact replay)."""

    code = "redemption_not_held"
    title = "Redemption is no longer held"


class HoldExpired(Conflict):
    """The hold lapsed before this capture, void or extend."""

    code = "hold_expired"
    title = "Hold expired"


class OrderNotFound(NotFound):
    """A refund names an order this program never recorded."""

    code = "order_not_found"
    title = "Order not found"


class RefundExceedsPurchase(BusinessRuleViolation):
    """Refunds of one order (or of a line's quantity) would exceed what was bought."""

    code = "refund_exceeds_purchase"
    title = "Refund exceeds the purchase"


class AlreadyReferred(Conflict):
    """The customer was already referred, by another code."""

    code = "already_referred"
    title = "Already referred"


class CustomerClosed(BusinessRuleViolation):
    """A closed membership earns and redeems nothing more; its history stays readable."""

    code = "customer_closed"
    title = "Customer closed"


class AdjustmentNotFound(NotFound):
    code = "adjustment_not_found"
    title = "Adjustment not found"


class AdjustmentNotPending(Conflict):
    """Only an adjustment waiting for approval can be approved."""

    code = "adjustment_not_pending"
    title = "Adjustment is not pending approval"


class SameApprover(BusinessRuleViolation):
    """An adjustment above the approval threshold needs a second finance key."""

    status = 403
    code = "same_approver"
    title = "The requester cannot approve their own adjustment"


class AlreadyReversed(Conflict):
    """A transaction is reversed at most once (and a reversal is never reversed)."""

    code = "already_reversed"
    title = "Transaction already reversed"


class HasDependents(Conflict):
    """A later transaction depends on this one (refund, release, capture): reverse those first,
    or book an adjustment."""

    code = "has_dependents"
    title = "Transaction has dependent transactions"


class NotReversible(Conflict):
    """Reversing this transaction would not restore a meaningful state (a reversal, a closure)."""

    code = "not_reversible"
    title = "Transaction cannot be reversed"


class PeriodNotEnded(BusinessRuleViolation):
    code = "period_not_ended"
    title = "Period has not ended"


class PeriodNotFound(NotFound):
    code = "period_not_found"
    title = "Period not closed"

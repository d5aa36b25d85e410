"""Customers and their balances as seen by the program."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .accounts import ASSETS, BUCKETS, customer_account


@dataclass(frozen=True, slots=True)
class Customer:
    pk: int
    program_id: str
    customer_id: str
    email: str | None
    phone: str | None
    name: str | None
    display_name: str | None
    birthday: str | None
    leaderboard_opt_in: bool
    status: str
    created_at: datetime
    updated_at: datetime
    tier_id: str | None = None
    tier_changed_at: datetime | None = None
    tier_evaluate_at: datetime | None = None
    tier_manual_until: datetime | None = None
    referral_code: str | None = None
    referred_by_pk: int | None = None

    def refuse_unless_active(self, doing: str) -> None:
        """A blocked or closed member can neither earn nor redeem; their history stays readable."""
        from .errors import CustomerBlocked, CustomerClosed

        if self.status == "blocked":
            raise CustomerBlocked(f"customer {self.customer_id!r} is blocked: they cannot {doing}")
        if self.status == "closed":
            raise CustomerClosed(f"customer {self.customer_id!r} is closed: they cannot {doing}")

    def account(self, asset: str, bucket: str) -> str:
        return customer_account(self.customer_id, asset, bucket)

    def account_paths(self) -> list[str]:
        return [self.account(asset, bucket) for asset in ASSETS for bucket in BUCKETS]


PROFILE_FIELDS = ("email", "phone", "name", "display_name", "birthday", "leaderboard_opt_in")


@dataclass(frozen=True, slots=True)
class BucketBalances:
    available: int = 0
    pending: int = 0
    reserved: int = 0


def as_seen(customer_id: str, cached: dict[str, int], due: dict[str, int], lapsed: dict[str, int]) -> dict[str, int]:
    """Balances by path as the customer sees them now: pending value whose window has passed (`due`,
    per asset) and lapsed holds (`lapsed`, per asset) count as available before anything books them."""
    seen = dict(cached)
    for asset, amount in due.items():
        seen[customer_account(customer_id, asset, "pending")] -= amount
        seen[customer_account(customer_id, asset, "available")] += amount
    for asset, amount in lapsed.items():
        seen[customer_account(customer_id, asset, "reserved")] -= amount
        seen[customer_account(customer_id, asset, "available")] += amount
    return seen


@dataclass(frozen=True, slots=True)
class Balances:
    """A customer's balances per asset and bucket, read from the cached balance rows."""

    currency: str
    points: BucketBalances
    cashback: BucketBalances

    @classmethod
    def from_accounts(cls, currency: str, customer_id: str, by_path: dict[str, int]) -> "Balances":
        def bucket(asset: str) -> BucketBalances:
            return BucketBalances(**{b.value: by_path.get(customer_account(customer_id, asset, b), 0) for b in BUCKETS})

        return cls(currency=currency, points=bucket("points"), cashback=bucket("cashback"))

    def plus(self, asset: str, bucket: str, amount: int) -> "Balances":
        """These balances with `amount` added to one bucket (a projection; nothing is booked)."""
        from dataclasses import replace
        current = getattr(self, asset)
        return replace(self, **{asset: replace(current, **{bucket: getattr(current, bucket) + amount})})

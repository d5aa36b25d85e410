"""Account paths, readable in a trial balance.

Customer accounts: `customer/{customer_id}/{asset}/{bucket}`.
House accounts: `house/{asset}/{name}`, by source (`issued/...`, `funding/...`) and by fate.
"""
from __future__ import annotations

from enum import StrEnum


class Asset(StrEnum):
    POINTS = "points"
    CASHBACK = "cashback"


class Bucket(StrEnum):
    AVAILABLE = "available"
    PENDING = "pending"
    RESERVED = "reserved"


ASSETS = (Asset.POINTS, Asset.CASHBACK)
BUCKETS = (Bucket.AVAILABLE, Bucket.PENDING, Bucket.RESERVED)


def customer_account(customer_id: str, asset: str, bucket: str) -> str:
    return f"customer/{customer_id}/{asset}/{bucket}"


def house_account(asset: str, name: str) -> str:
    return f"house/{asset}/{name}"


def purchase_source(asset: str) -> str:
    """Where a purchase accrual's value comes from: points are issued, cashback is funded."""
    return house_account(asset, "issued/purchase" if asset == Asset.POINTS else "funding/purchase")


# House accounts every program has from its creation; others (adjustment/{reason}) appear on first use.
STANDARD_HOUSE_ACCOUNTS: tuple[tuple[str, str], ...] = tuple(
    (house_account(Asset.POINTS, name), Asset.POINTS)
    for name in (
        "issued/purchase", "issued/promotion", "issued/referral", "issued/migration",
        "redeemed", "expired", "written_off", "forfeited",
    )
) + tuple(
    (house_account(Asset.CASHBACK, name), Asset.CASHBACK)
    for name in (
        "funding/purchase", "funding/promotion", "funding/referral", "funding/migration",
        "redeemed", "expired", "written_off", "forfeited",
    )
)


def parse_customer_account(path: str) -> tuple[str, str, str] | None:
    """(customer_id, asset, bucket) of a customer account path, None for a house account."""
    parts = path.split("/")
    if len(parts) == 4 and parts[0] == "customer":
        return parts[1], parts[2], parts[3]
    return None

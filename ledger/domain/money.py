"""Currencies and integer amounts. No float ever touches an amount."""
from __future__ import annotations

from functools import lru_cache

from iso4217 import Currency

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@lru_cache(maxsize=None)
def minor_unit_exponent(code: str) -> int | None:
    """Exponent of a current ISO 4217 code (2 for EUR, 0 for JPY), None if unknown or without one."""
    if len(code) != 3 or not code.isalpha() or not code.isupper():
        return None
    try:
        return Currency(code).exponent
    except ValueError:
        return None


def is_valid_currency(code: str) -> bool:
    return minor_unit_exponent(code) is not None


def one_major_unit(code: str) -> int:
    """Minor units in one major unit: 100 for EUR, 1 for JPY."""
    exponent = minor_unit_exponent(code)
    if exponent is None:
        raise ValueError(f"unknown currency {code!r}")
    return 10**exponent


def fits_int64(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX

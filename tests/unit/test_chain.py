"""The hash-chain primitives (ledger.domain.chain): canonical, deterministic, and sensitive to every
field and to order, so that any change to booked history changes a link."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ledger.domain import chain

UTC = timezone.utc
T = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)

HEADER = dict(transaction_id="txn_1", type="purchase_accrual", reference_kind="order", reference_id="A-1",
              actor="api_key:key_1", request_id="req_1", occurred_at=T - timedelta(minutes=5), recorded_at=T,
              description="You earned 100 points on order A-1", details={"rate": 1, "order": {"lines": 2}})
ENTRY = dict(account="customer/c-1/points/available", asset="points", amount=100, balance_after=100, recorded_at=T)

# One change per field; each must give another header, content and link.
HEADER_CHANGES: list[tuple[str, Any]] = [
    ("transaction_id", "txn_2"), ("type", "refund"), ("reference_kind", "refund"), ("reference_id", "A-2"),
    ("actor", "job:run"), ("request_id", None), ("request_id", "req_2"),
    ("occurred_at", T - timedelta(minutes=5, microseconds=1)), ("recorded_at", T + timedelta(microseconds=1)),
    ("description", "You earned 101 points on order A-1"), ("details", {"rate": 2, "order": {"lines": 2}}),
    ("details", {"rate": 1, "order": {"lines": 3}}), ("details", {}),
]
ENTRY_CHANGES: list[tuple[str, Any]] = [
    ("account", "customer/c-1/points/pending"), ("account", "customer/c-2/points/available"),
    ("asset", "cashback"), ("amount", 101), ("amount", -100), ("balance_after", 101), ("balance_after", None),
    ("balance_after", 0), ("recorded_at", T + timedelta(microseconds=1)),
]


def _header(**changes: Any) -> str:
    return chain.transaction_header(**{**HEADER, **changes})


def _content(header: str | None = None, **changes: Any) -> str:
    return chain.entry_content(_header() if header is None else header, **{**ENTRY, **changes})


# --------------------------------------------------------------------------- instant()


@pytest.mark.parametrize("value", [
    datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
    datetime(2026, 11, 26, 13, 0, tzinfo=timezone(timedelta(hours=1))),
    datetime(2026, 11, 27, 1, 0, tzinfo=timezone(timedelta(hours=13))),  # Auckland in summer
    datetime(2026, 11, 26, 7, 0, tzinfo=timezone(timedelta(hours=-5))),  # New York in winter
    datetime(2026, 11, 26, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
])
def test_instant_is_utc_with_microseconds_and_z_whatever_the_offset(value):
    assert chain.instant(value) == "2026-11-26T12:00:00.000000Z"


def test_instant_keeps_microseconds_and_crosses_dates():
    assert chain.instant(T) == "2026-11-26T12:00:00.123456Z"
    assert chain.instant(datetime(2026, 12, 31, 20, 30, 0, 1, tzinfo=timezone(timedelta(hours=-4)))) == \
        "2027-01-01T00:30:00.000001Z"
    assert chain.instant(datetime(2027, 1, 1, 0, 0, 0, 999999, tzinfo=timezone(timedelta(hours=13)))) == \
        "2026-12-31T11:00:00.999999Z"


def test_the_same_instant_in_another_offset_gives_the_same_header_and_link():
    elsewhere = timezone(timedelta(hours=-7))
    header = _header(occurred_at=HEADER["occurred_at"].astimezone(elsewhere),
                     recorded_at=T.astimezone(timezone(timedelta(hours=9))))
    assert header == _header()
    content = _content(header, recorded_at=T.astimezone(elsewhere))
    assert content == _content()
    assert chain.link(None, content) == chain.link(None, _content())


# --------------------------------------------------------------------------- determinism


def test_everything_is_deterministic():
    assert _header() == _header()
    assert _content() == _content()
    assert chain.link("ab" * 32, _content()) == chain.link("ab" * 32, _content())
    heads = [(1, "a" * 64), (2, "b" * 64)]
    assert chain.seal_digest(None, heads) == chain.seal_digest(None, list(heads))


def test_details_key_order_does_not_matter():
    assert _header(details={"b": 2, "a": {"y": 1, "x": 2}}) == _header(details={"a": {"x": 2, "y": 1}, "b": 2})


def test_link_is_sha256_of_previous_newline_content():
    content = _content()
    assert chain.link(None, content) == hashlib.sha256(f"\n{content}".encode()).hexdigest()
    assert chain.link("f" * 64, content) == hashlib.sha256(f"{'f' * 64}\n{content}".encode()).hexdigest()
    assert chain.link(None, content) == chain.link("", content)  # the first link's previous is ""
    link = chain.link(None, content)
    assert len(link) == 64 and int(link, 16) >= 0


# --------------------------------------------------------------------------- sensitivity


def test_any_header_field_change_changes_the_header_content_and_link():
    base = _header()
    headers = [_header(**{field: value}) for field, value in HEADER_CHANGES]
    assert base not in headers
    assert len(set(headers)) == len(headers)
    links = {chain.link(None, _content(h)) for h in headers}
    assert len(links) == len(headers) and chain.link(None, _content(base)) not in links


def test_any_entry_field_change_changes_the_content_and_link():
    contents = [_content(**{field: value}) for field, value in ENTRY_CHANGES]
    assert _content() not in contents
    assert len(set(contents)) == len(contents)
    previous = "0" * 64
    links = {chain.link(previous, c) for c in contents}
    assert len(links) == len(contents) and chain.link(previous, _content()) not in links


def test_types_are_not_conflated():
    """An amount of 100 is not the string "100"; a missing request id is not the text "None"."""
    assert _content(amount=100) != chain.entry_content(_header(), **{**ENTRY, "amount": "100"})
    assert _header(request_id=None) != _header(request_id="None")
    assert _header(request_id=None) != _header(request_id="")


def test_a_change_to_the_previous_link_changes_the_link():
    content = _content()
    assert chain.link("a" * 64, content) != chain.link("b" * 64, content)
    assert chain.link(None, content) != chain.link("0" * 64, content)


def test_chains_are_order_sensitive():
    first, second = _content(amount=100), _content(amount=-100, balance_after=0)
    one = chain.link(chain.link(None, first), second)
    other = chain.link(chain.link(None, second), first)
    assert one != other
    # Dropping an entry changes every later link.
    third = _content(amount=5, balance_after=5)
    assert chain.link(chain.link(chain.link(None, first), second), third) != chain.link(chain.link(None, first), third)


def test_a_rewritten_chain_differs_from_the_original_at_every_later_link():
    entries = [_content(amount=a, balance_after=b) for a, b in [(100, 100), (-30, 70), (50, 120), (-20, 100)]]
    forged = list(entries)
    forged[1] = _content(amount=-31, balance_after=69)

    def links(contents: list[str]) -> list[str]:
        out, previous = [], None
        for content in contents:
            previous = chain.link(previous, content)
            out.append(previous)
        return out

    original, rewritten = links(entries), links(forged)
    assert original[0] == rewritten[0]
    assert all(o != r for o, r in zip(original[1:], rewritten[1:]))


# --------------------------------------------------------------------------- seals


def test_seal_digest_is_over_sorted_heads_chained_to_the_previous_seal():
    heads = [(10, "c" * 64), (2, "a" * 64), (7, "b" * 64)]
    digest = chain.seal_digest(None, heads)
    assert digest == chain.seal_digest(None, list(reversed(heads)))  # input order does not matter
    expected = hashlib.sha256(b"")
    for key, head in sorted(heads):
        expected.update(f"\n{key}:{head}".encode())
    assert digest == expected.hexdigest()
    assert chain.seal_digest(None, []) == hashlib.sha256(b"").hexdigest()
    assert chain.seal_digest("d" * 64, []) == hashlib.sha256(b"d" * 64).hexdigest()


def test_seal_digest_changes_with_any_head_key_or_previous_digest():
    heads = [(1, "a" * 64), (2, "b" * 64), (3, "c" * 64)]
    base = chain.seal_digest("e" * 64, heads)
    variants = [
        chain.seal_digest(None, heads),
        chain.seal_digest("f" * 64, heads),
        chain.seal_digest("e" * 64, [(1, "a" * 64), (2, "b" * 63 + "c"), (3, "c" * 64)]),
        chain.seal_digest("e" * 64, [(1, "b" * 64), (2, "a" * 64), (3, "c" * 64)]),  # heads swapped
        chain.seal_digest("e" * 64, [(1, "a" * 64), (2, "b" * 64), (4, "c" * 64)]),  # another customer
        chain.seal_digest("e" * 64, heads[:2]),  # a customer left out
        chain.seal_digest("e" * 64, heads + [(4, "d" * 64)]),  # one added
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)

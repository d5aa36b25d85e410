"""Loyalty ledger: an append-only, double-entry ledger of points and cashback.

`ledger` holds the domain, the use cases and the storage; it never imports Flask.
"""

"""Authorizations domain: pure rules and aggregates (no I/O, no framework imports)."""

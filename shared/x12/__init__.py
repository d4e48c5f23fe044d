"""X12 5010 plumbing shared by every transaction set: delimiters, segments, interchange envelopes.

Transaction-set builders and parsers (270/271, 837P, 835, 999, 277CA) live in the owning service's `x12/`.
"""

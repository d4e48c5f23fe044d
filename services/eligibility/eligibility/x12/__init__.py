"""X12 270/271 (005010X279A1): pure builders, parsers and implementation-guide checks for eligibility."""

"""Member enrollment spans, exclusions, monthly 270/271 re-checks and change events."""

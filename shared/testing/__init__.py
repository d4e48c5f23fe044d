"""Test support shared by every service: database, bus and event fixtures (loaded as a pytest plugin)."""

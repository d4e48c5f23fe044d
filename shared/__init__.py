"""CalHub's shared library: event envelope and contracts, bus, outbox/inbox, db, scheduler, telemetry, auth."""

"""Authorization requests, decision deadlines, MCP decisions, expiry and reauthorization."""

"""Referral intake (REST and FHIR), routing to the member's MCP, closed-loop status."""

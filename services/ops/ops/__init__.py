"""Event journal, timelines, dead letters and replay, SLA boards for the hub's operations team."""

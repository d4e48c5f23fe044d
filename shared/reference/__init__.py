"""CalAIM reference data: identifiers, counties, MCPs, services, billing codes, exclusions, business calendar.

Pure and versioned: every table is effective-dated and read only from this package's own data files.
Each module is imported on its own (`from shared.reference.plans import plans_in_county`); see
docs/decisions/0003-reference-data.md for sources, markers and the choices made.
"""

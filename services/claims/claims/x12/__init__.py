"""X12 transaction sets the claims service owns: 837P out; 999 and 277CA in (835: the remittance module)."""

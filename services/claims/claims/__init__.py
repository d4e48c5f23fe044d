"""Encounters to claims, 837P batches, acknowledgments, 835 remittances and CBO payouts."""

"""Pure billing rules of the claims service: encounter checks, pricing, claim lifecycle, configuration."""

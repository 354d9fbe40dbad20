"""ionkinetics."""

"""Loading, validating and normalising a character's images."""

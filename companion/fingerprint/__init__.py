"""Fingerprints of checkpoints and the search for a stored parent."""

"""The investigation dossier: every engine on one pair, one combined verdict (+ HTML)."""

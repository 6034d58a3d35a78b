"""Fleet fingerprinting on Ray (optional extra `fleet`; the core never imports ray)."""

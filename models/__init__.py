"""Networks, checkpoints, training and evaluation (SPEC §4-6)."""

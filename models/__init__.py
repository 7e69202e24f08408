"""Networks, checkpoints, training and evaluation (docs/METHOD.md §4-6)."""

"""Synthetic demo data in the NTU RGB+D, NW-UCLA and custom formats (python -m demo --out data/demo)."""

"""Skeleton data: layouts, datasets and protocols, readers for NTU RGB+D and NW-UCLA."""

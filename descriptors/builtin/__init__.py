"""The paper's five descriptors, one module each, in the release's order (the registry's order,
and so the order of every table, folder list and default set)."""
from . import gd, jdd, add, lad, fdd

MODULES = (gd, jdd, add, lad, fdd)

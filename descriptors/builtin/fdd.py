"""FDD, the fused descriptor (docs/METHOD.md §3): the JDD, ADD and LAD images as R, G, B."""
from __future__ import annotations

from ..base import COLOUR, Descriptor, pair_features

# FDD has no matrix: its channels are the three images, so its rows are theirs (the registry's
# channel_features); ``features`` names the red channel's (JDD's) rows.
DESCRIPTOR = Descriptor("FDD", COLOUR, pair_features, made_of=("JDD", "ADD", "LAD"),
                        summary="the JDD, ADD and LAD images as R, G, B")

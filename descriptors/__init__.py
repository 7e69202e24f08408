"""Descriptors (the paper's five in builtin/, yours in extra/, gathered by registry.py) and their
images; extraction of descriptor folders."""
from .core import (DEFAULT_IMG_SIZE, MODES, PAPER_QUIRKS, Quirks, descriptor_images, descriptor_matrices,
                   encode_gray, encode_rgb)

__all__ = ["DEFAULT_IMG_SIZE", "MODES", "PAPER_QUIRKS", "Quirks", "descriptor_images", "descriptor_matrices",
           "encode_gray", "encode_rgb"]

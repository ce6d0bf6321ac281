"""Local picture work with Pillow: decoding and checking inputs, grids, layers, resizing."""

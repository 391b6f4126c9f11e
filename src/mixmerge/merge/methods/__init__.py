"""Merge methods, one module each; registered in `mixmerge.merge.registry`."""

"""mixmerge: data mixing vs model merging for helpful, honest and harmless LLMs."""

__version__ = "0.1.0"

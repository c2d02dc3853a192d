"""bdc-assistant: a local terminal coding assistant built on "Boost, Disentangle, and Customize" (BDC)."""

__version__ = "0.1.0"

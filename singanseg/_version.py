"""The version, in a module that imports nothing (ckpt.py and the build read it without
importing the package)."""

__version__ = "0.1.0"

"""edgecls: image classifiers from recipe to edge device."""
__version__ = "0.1.0"

"""graphc's version: one place, read by the package and by the cache keys."""

__version__ = "0.1.0"

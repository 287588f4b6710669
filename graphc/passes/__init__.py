"""Graph-to-graph passes.  Every pass is built on one mechanism, ``rewrite``."""

from .rewrite import rewrite

__all__ = ["rewrite"]

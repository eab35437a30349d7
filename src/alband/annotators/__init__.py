"""Annotators (shell): who labels a queried item, and what it cost.

Every annotator implements :class:`alband.annotators.base.Annotator`: it gets
:class:`alband.annotation.Item` objects and returns one
:class:`alband.annotation.Annotation` each, carrying the label (or an explicit
invalid marker), confidence, tokens, dollars, latency and the provider's
response id. Annotators never know how items were chosen.
"""

from alband.annotators.base import Annotator

__all__ = ["Annotator"]

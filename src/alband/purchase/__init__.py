"""Buying labels (core): the one purchase rule and the routed per-item steps, shared by both drivers of a round.

:mod:`alband.purchase.rule`: who is paid, whether an audit fits, what fits the
budget. :mod:`alband.purchase.routed`: a router's view of an item, its
feedback, the label weights at the end of a batch, and the keys.
"""

"""The routed purchase steps moved to :mod:`alband.purchase.routed` (shared by both drivers); re-exported here."""

from alband.purchase.routed import (  # noqa: F401
    ROUTE_STREAM,
    RoutingCarry,
    arm_key,
    finish_batch,
    init_carry,
    item_context,
    item_keys,
    observe_item,
    route_key,
    routing_setup,
)
from alband.purchase.rule import Payment, plan_payment  # noqa: F401

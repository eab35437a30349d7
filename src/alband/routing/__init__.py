"""Which annotator pays for which item: pure routing rules and their replay engine.

Every router is a triple ``init / decide / update`` of pure functions
(:mod:`alband.routing.base`) run item by item under a dollar budget that is
never exceeded (:mod:`alband.routing.replay_engine`, :mod:`alband.routing.spend_total`):

* :func:`fixed_router`, :func:`random_router`, :func:`oracle_router` (hindsight, evaluation only);
* :func:`cascade_router`: cheap first, escalate below a learned confidence threshold (FrugalGPT);
* :func:`trust_escalate_router`: cheap first, escalate below a threshold certified by fixed-sequence
  testing so that kept labels agree with the strongest annotator at a set level (Trust or Escalate);
* :func:`contextual_ts_router`: contextual cost-aware Thompson sampling with a dual price (BwK);
* :func:`bts_router`, :func:`ucb_bv_router`: budgeted bandits without context.

Each is registered by name in its own module (:mod:`alband.routing.registry`):
``make_router("contextual_ts", exploration=0.5)``; a new router is one module
that calls :func:`register_router`. The registered names (``fixed``,
``random``, ``oracle``, ``cascade``, ``trust_escalate``, ``contextual_ts``, ``bts``, ``ucb_bv``)
are the one spelling used by configs, the CLI and reports.

Router quality (PGR, APGR, dollars to a target accuracy) is measured in :mod:`alband.routing.router_quality`.
The shell that reads outcome matrices and runs sweeps is :mod:`alband.replay`.
"""

from alband.routing.audit import AuditConfig
from alband.routing.base import Decision, Feedback, Router, RouterSetup, StepContext, Stream
from alband.routing.baselines import fixed_router, oracle_router, random_router
from alband.routing.budgeted_bandits import bts_router, ucb_bv_router
from alband.routing.cascade import CascadeConfig, cascade_router
from alband.routing.trust_escalate import EscalationConfig, trust_escalate_router
from alband.routing.contextual_ts import ContextualTSConfig, contextual_ts_router
from alband.routing.posterior import PosteriorConfig
from alband.routing.registry import ARM, ARMS, available_routers, make_router, register_router, router_entry
from alband.routing.replay_engine import Trace, replay, replay_batch, replay_batch_with
from alband.routing.router_quality import apgr, apgr_budget_grid, cost_to_target, pgr

__all__ = [
    "ARM",
    "ARMS",
    "AuditConfig",
    "CascadeConfig",
    "ContextualTSConfig",
    "EscalationConfig",
    "Decision",
    "Feedback",
    "PosteriorConfig",
    "Router",
    "RouterSetup",
    "StepContext",
    "Stream",
    "Trace",
    "apgr",
    "apgr_budget_grid",
    "available_routers",
    "bts_router",
    "cascade_router",
    "contextual_ts_router",
    "cost_to_target",
    "fixed_router",
    "make_router",
    "oracle_router",
    "pgr",
    "random_router",
    "register_router",
    "replay",
    "replay_batch",
    "replay_batch_with",
    "router_entry",
    "trust_escalate_router",
    "ucb_bv_router",
]

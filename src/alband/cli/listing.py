"""``alband policies``, ``alband routers`` and ``alband learners``: every registered name, its hyper-parameters and defaults, one line of doc.

Installed plug-ins (entry points of ``alband.policies`` / ``alband.routers`` /
``alband.learners``)
are imported first, so they are listed too; one that fails to import is
reported on stderr and the others are still listed.
"""

from __future__ import annotations

import json
import sys


def _listings(kind: str):
    from alband.plugins import LEARNERS, POLICIES, ROUTERS, describe, load_entry_points

    if kind == "policies":
        import alband.policies  # noqa: F401  (registers the built-ins)

        failures = load_entry_points(POLICIES)
        rows = [describe(name, factory) for name, factory in sorted(POLICIES.factories().items())]
    elif kind == "learners":
        failures = load_entry_points(LEARNERS)
        rows = []
        for name, factory in sorted(LEARNERS.factories().items()):
            row = describe(name, factory)
            row.parameters.pop("n_classes", None)  # the task's, not a hyper-parameter a config sets
            rows.append(row)
    else:
        from alband.routing import ARM, ARMS, router_entry
        from alband.routing.registry import audit_config

        failures = load_entry_points(ROUTERS)
        rows = []
        for name in sorted(ROUTERS.factories()):
            entry = router_entry(name)
            row = describe(name, entry.factory, entry.parameters, defaults_from=audit_config)
            for key, kind in entry.parameters.items():  # as a config spells them: annotator names
                if kind in (ARM, ARMS):
                    row.parameters[key] = "the first annotator" if kind == ARM else "every annotator, in order"
            if entry.hindsight:
                row = row.__class__(row.name, row.parameters, row.summary + " [evaluation only]", row.origin)
            rows.append(row)
    return rows, failures


def list_main(kind: str, as_json: bool) -> int:
    rows, failures = _listings(kind)
    for line in failures:
        print(f"alband {kind}: plug-in not loaded: {line}", file=sys.stderr)
    if as_json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return 0
    width = max(len(row.name) for row in rows)
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row.parameters.items()) or "(no hyper-parameters)"
        origin = "" if row.origin == "built-in" else f" [plug-in: {row.origin}]"
        print(f"{row.name:<{width}}  {params}\n{'':<{width}}  {row.summary}{origin}")
    return 0


def register(sub) -> None:
    """Add ``policies``, ``routers`` and ``learners`` to the ``alband`` parser."""
    for kind, what, one in (("policies", "query policies", "query policy"), ("routers", "annotator routers", "router"),
                            ("learners", "learners", "learner")):
        cmd = sub.add_parser(kind, help=f"list the {what}: names, hyper-parameters with defaults, one line of doc",
                             description=f"List every registered {one} (built-in and installed plug-ins) "
                                         "with its hyper-parameters, their defaults and one line of documentation.")
        cmd.add_argument("--json", action="store_true", help="print a JSON list instead of text")
        cmd.set_defaults(func=lambda a, kind=kind: list_main(kind, a.json))


__all__ = ["list_main", "register"]

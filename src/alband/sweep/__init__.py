"""Sweeps: grids of ``simulate`` calls over config keys and seeds, resumable, on local processes or Ray.

``spec`` reads a sweep spec, ``cells`` expands it into cells (one ``simulate``
call each, identified by a hash of the resolved config and seeds), ``store``
keeps one atomically written JSON row per cell, ``worker`` runs a cell,
``local_backend`` and ``ray_backend`` run many, ``run`` drives a sweep and
``report`` turns stored rows into tables with paired intervals and plots.
"""

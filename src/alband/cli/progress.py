"""What long commands print while they work: a line saying what starts (compiling ...), then a tqdm bar, on stderr."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def stage_bar(what: str, total: int, *, quiet: bool = False, unit: str = "step") -> Iterator[Callable[[str], None]]:
    """A bar of ``total`` steps; the yielded ``step(name)`` prints ``what: name ...`` and advances past the last one.

    Each stage is announced when it starts (a "compiling ..." stage shows
    while XLA works, before the bar can move) and the bar counts those done.
    """
    from tqdm.auto import tqdm

    started = [False]
    with tqdm(total=total, desc=what, unit=unit, disable=quiet, file=sys.stderr, leave=False) as bar:
        def step(name: str) -> None:
            if started[0]:
                bar.update(1)
            started[0] = True
            bar.set_postfix_str(name)
            if not quiet:
                bar.write(f"{what}: {name} ...", file=sys.stderr)

        yield step
        if started[0]:
            bar.update(1)


__all__ = ["stage_bar"]

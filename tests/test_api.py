"""The two-import Python API (:mod:`alband.api`): its docstrings' examples run as doctests, and its edges.

The examples simulate BBC News (the embedded corpus) on 300 items for a few
rounds, so every docstring runs in seconds once its program is compiled (the
persistent compilation cache serves the repeats).
"""

from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import pytest

import alband
from alband import api
from alband.errors import AlbandError


def test_import_alband_stays_light_and_the_api_names_load_on_use():
    code = ("import sys, alband; light = 'jax' not in sys.modules and 'alband.api' not in sys.modules; "
            "alband.make_config; print(light, 'alband.api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]
    assert alband.stats.paired_interval is not None  # submodules by attribute too
    with pytest.raises(AttributeError):
        alband.no_such_name  # noqa: B018


@pytest.mark.slow
def test_the_docstring_examples_run(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    failed, attempted = doctest.testmod(api, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert attempted >= 20 and failed == 0


def test_the_builder_validates_like_a_file_and_round_trips_its_toml():
    cfg = alband.make_config(learner={"name": "sklearn", "params": {"C": 2.0}}, loop={"rounds": 2})
    assert cfg.learner.name == "sklearn" and cfg.learner.params == {"params": {"C": 2.0}}
    assert alband.make_config(cfg).text == cfg.text
    with pytest.raises(AlbandError, match=r"<alband.config>: \[policy\] name: unknown query policy 'nope'"):
        alband.make_config(policy={"name": "nope"})
    with pytest.raises(AlbandError, match="unknown section 'polcy'"):
        alband.make_config(polcy={"name": "entropy"})


def test_compare_pairs_by_seed_and_refuses_other_seeds():
    def result(acc, seeds):
        acc = np.asarray(acc, np.float64)[:, None]
        return api.Result("r", None, np.asarray(seeds), acc, acc * 0, acc * 0, 0.0, 0.0, {})

    diff = alband.compare(result([0.8, 0.7, 0.9], [0, 1, 2]), result([0.7, 0.65, 0.8], [0, 1, 2]))
    assert diff.n == 3 and diff.estimate == pytest.approx(0.0833333) and diff.low > 0  # paired: spread is small
    with pytest.raises(AlbandError, match="ran different seeds"):
        alband.compare(result([0.8], [0]), result([0.8], [1]))
    with pytest.raises(AlbandError, match="unknown metric"):
        alband.compare(result([0.8], [0]), result([0.8], [0]), metric="auc")

"""``[learner] name``: a registered learner or a plug-in (module path, entry point) named in a config.

The end-to-end tests run ``alband run`` and ``alband simulate`` in a
subprocess on a config whose learner is ``tests/centroid_learner.py`` copied
beside the config (a module outside ``src/``), as a user's would be.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from alband.config import parse_config
from alband.errors import AlbandError
from alband.models.registry import make_learner, registered_factories
from alband.models.softmax_regression import SoftmaxRegression
from alband.plugins import GROUPS, LEARNERS, resolve_plugin
from test_plugins import _cli, _reviews

HERE = Path(__file__).resolve().parent

CONFIG = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[learner]
{learner}

[policy]
name = "entropy"

[loop]
batch_size = 4
rounds = 2
initial_labels = 4
seed = 1

[budget]
usd = 1.0

[annotators.llm]
kind = "simulated"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
flip_rate = 0.1
"""


@pytest.fixture(autouse=True)
def _registry_restored(monkeypatch):
    """Learners registered by a test leave the registry as it was (other tests list the names)."""
    import alband.models.registry as learners

    # Without the centroid learner another test may have registered from tests/centroid_learner.py:
    # here it registers from a copy beside a config, a module of another name.
    registered_factories()  # alband's own learners are in the snapshot
    saved = learners.LEARNER_REGISTRY.snapshot()
    entries, built = saved
    learners.LEARNER_REGISTRY.restore(({k: v for k, v in entries.items() if k != "test_soft_centroids"},
                                       {k: v for k, v in built.items() if k[0] != "test_soft_centroids"}))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "my_centroids", raising=False)
    yield
    sys.modules.pop("my_centroids", None)
    learners.LEARNER_REGISTRY.restore(saved)


def _beside(folder: Path, module: str = "my_centroids") -> None:
    shutil.copy(HERE / "centroid_learner.py", folder / f"{module}.py")


def test_the_learner_group_is_a_plugin_group_over_the_registry():
    assert GROUPS["alband.learners"] is LEARNERS
    assert {"softmax_regression", "laplace_logistic"} <= set(LEARNERS.factories())


def test_without_a_learner_section_the_learner_is_softmax_regression_with_its_defaults():
    config = parse_config(CONFIG.format(learner=""), source="run.toml")
    assert config.learner.name == "softmax_regression" and config.learner.params == {}
    assert config.learner.build(4) == SoftmaxRegression(4, 1.0, 200, 1e-5)
    config = parse_config(CONFIG.format(learner="c = 0.5\nmax_iter = 50"), source="run.toml")
    assert config.learner.build(3) == SoftmaxRegression(3, 0.5, 50, 1e-5)


def test_a_module_path_beside_the_config_resolves_and_the_task_gives_n_classes(tmp_path):
    _beside(tmp_path)
    config = parse_config(CONFIG.format(learner='name = "my_centroids:soft_centroids"\ntemperature = 2.0'),
                          source="run.toml", base_dir=tmp_path)
    assert config.learner.name == "test_soft_centroids"
    learner = config.learner.build(5)
    assert (learner.n_classes, learner.temperature, learner.shrink) == (5, 2.0, 1.0)
    # A learner without n_classes (binary) is built from its hyper-parameters alone.
    config = parse_config(CONFIG.format(learner='name = "laplace_logistic"\nridge = 2.0'), source="run.toml")
    assert config.learner.build(2).ridge == 2.0


def test_an_entry_point_of_group_alband_learners_resolves(tmp_path, monkeypatch):
    """A package declaring ``[alband.learners]`` in its ``entry_points.txt``, as ``pip install`` leaves it."""
    site = tmp_path / "site"
    (site / "ep_learners").mkdir(parents=True)
    shutil.copy(HERE / "centroid_learner.py", site / "ep_learners" / "__init__.py")
    info = site / "ep_learners-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-learners\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[alband.learners]\nep_centroids = ep_learners:soft_centroids\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "ep_learners", raising=False)
    config = parse_config(CONFIG.format(learner='name = "ep_centroids"\nshrink = 3.0'), source="run.toml")
    assert config.learner.name == "test_soft_centroids" and config.learner.build(4).shrink == 3.0
    assert "ep_centroids" in LEARNERS.entry_point_names()


def test_registering_the_same_function_again_is_not_an_error_and_a_different_one_is(tmp_path):
    _beside(tmp_path)
    assert resolve_plugin("my_centroids:soft_centroids", LEARNERS, search=tmp_path) == "test_soft_centroids"
    first = make_learner("test_soft_centroids", n_classes=3)
    namespace = {"__name__": "my_centroids"}  # a notebook cell run again: the same function, defined anew
    exec(compile((tmp_path / "my_centroids.py").read_text(), "my_centroids.py", "exec"), namespace)
    assert registered_factories()["test_soft_centroids"] is namespace["soft_centroids"]
    assert make_learner("test_soft_centroids", n_classes=3) == first
    with pytest.raises(ValueError, match="learner 'softmax_regression' is registered twice"):
        exec("from alband.models import register_learner\n@register_learner('softmax_regression')\n"
             "def softmax_regression(n_classes):\n    pass\n", {"__name__": "elsewhere"})


@pytest.mark.parametrize(("learner", "message"), [
    ('name = "no_such_module_xyz:thing"', r"\[learner\] name: learner 'no_such_module_xyz:thing': cannot import"),
    ('name = "alband.models.softmax_regression:fit"', r"\[learner\] name: .*fit is not registered"),
    ('name = "no_such_learner"', r"\[learner\] name: unknown learner 'no_such_learner'"),
    ("name = 3", r"\[learner\] name must be a learner name"),
    ("cc = 1.0", r"\[learner\]: unknown key 'cc' for learner 'softmax_regression' \(allowed: name, c, max_iter"),
    ("c = -1.0", r"\[learner\]: learner 'softmax_regression': c must be > 0"),
    ('name = "laplace_logistic"\nc = 1.0', r"\[learner\]: unknown key 'c' for learner 'laplace_logistic'"),
])
def test_a_bad_learner_is_one_line_naming_the_config_key(learner, message):
    with pytest.raises(AlbandError, match=r"^run.toml: " + message) as err:
        parse_config(CONFIG.format(learner=learner), source="run.toml")
    assert "\n" not in str(err.value)


def test_alband_learners_lists_hyper_parameters_defaults_and_a_line_of_doc(capsys):
    from alband.cli.main import main

    assert main(["learners", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["softmax_regression"]["parameters"] == {"c": "1.0", "max_iter": "200", "tol": "1e-05"}
    assert rows["laplace_logistic"]["parameters"]["ridge"] == "1.0"
    assert all(row["summary"] for row in rows.values())


@pytest.mark.slow
def test_a_learner_beside_the_config_runs_under_run_and_simulate(tmp_path):
    _reviews(tmp_path)
    _beside(tmp_path)
    (tmp_path / "run.toml").write_text(CONFIG.format(learner='name = "my_centroids:soft_centroids"\n'
                                                             "temperature = 4.0"))
    run = _cli(tmp_path, "run", "run.toml", "--out", "out", "--quiet")
    assert run.returncode == 0, run.stderr
    metrics = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["round"] == 2
    simulated = _cli(tmp_path, "simulate", "run.toml", "--seeds", "2", "--json", "--quiet")
    assert simulated.returncode == 0, simulated.stderr
    result = json.loads(simulated.stdout)
    assert len(result["seeds"]) == 2 and len(result["test_accuracy_mean"]) == 3
    listed = _cli(tmp_path, "learners")
    assert listed.returncode == 0 and "softmax_regression" in listed.stdout


def test_a_bad_learner_path_is_one_line_exit_2_and_no_run_directory(tmp_path):
    _reviews(tmp_path)
    (tmp_path / "run.toml").write_text(CONFIG.format(learner='name = "missing_learners:centroids"'))
    run = _cli(tmp_path, "run", "run.toml", "--out", "out")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "cannot import module 'missing_learners'" in run.stderr
    assert not (tmp_path / "out").exists()

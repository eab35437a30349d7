"""Plug-ins (:mod:`alband.plugins`): a policy or router outside ``src/`` named in a config, by module path or entry point.

The end-to-end tests run ``alband run`` and ``alband simulate`` in a
subprocess whose ``PYTHONPATH`` holds a tiny plug-in: a module beside the
config (module path) or a package with a ``*.dist-info/entry_points.txt``
(how an installed package declares entry points), never installed into the
environment itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alband.config import parse_config
from alband.errors import AlbandError
from alband.plugins import POLICIES, ROUTERS, resolve_plugin
from alband.policies import make_policy
from alband.policies.registry import registered_factories
from helpers import three_simulated_annotators_toml

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_SOURCE = '''
"""Plug-ins of the tests: a noisy entropy policy and a coin-flip router."""
import jax

from alband.policies import register_policy, score_policy
from alband.policies.uncertainty import uncertainty_scores
from alband.routing import random_router, register_router


@register_policy("{policy}")
def {policy}(noise: float = 0.1):
    """Entropy plus Gumbel noise of scale ``noise``."""
    if noise < 0:
        raise ValueError("noise must be >= 0")
    return score_policy("{policy}", lambda ctx, key: uncertainty_scores(ctx, "entropy")
                        + noise * jax.random.gumbel(key, ctx.probs.shape[:1]))


@register_router("{router}")
def {router}():
    """A uniform draw among the arms that keep the pace."""
    return random_router()
'''

CONFIG = """
[data]
source = "table"
path = "reviews.csv"
dims = 8

[policy]
name = "{policy}"
noise = 0.05

[loop]
batch_size = 4
rounds = 2
initial_labels = 4
seed = 3

[budget]
usd = 1.0

""" + three_simulated_annotators_toml() + """
[routing]
router = "{router}"
annotators = ["cheap", "strong"]
feedback = "gold"
"""


def _reviews(folder: Path) -> None:
    lines = ["text,label"] + [f"a good and lovely film number {k},pos" if k % 2 else
                              f"a bad and dull film number {k},neg" for k in range(40)]
    (folder / "reviews.csv").write_text("\n".join(lines) + "\n")


def _module_plugin(folder: Path, module: str, policy: str, router: str) -> None:
    (folder / f"{module}.py").write_text(PLUGIN_SOURCE.format(policy=policy, router=router))


def _entry_point_plugin(site: Path) -> None:
    """A package ``ep_plugin`` declaring entry points, as ``pip install`` would leave it."""
    (site / "ep_plugin").mkdir(parents=True)
    (site / "ep_plugin" / "__init__.py").write_text(PLUGIN_SOURCE.format(policy="ep_entropy", router="ep_coin"))
    info = site / "ep_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[alband.policies]\nep_entropy = ep_plugin:ep_entropy\n\n"
                                           "[alband.routers]\nep_coin = ep_plugin:ep_coin\n")


def _cli(cwd: Path, *args: str, pythonpath: list[Path] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(ROOT / "src")])}
    return subprocess.run([sys.executable, "-c", "import sys; from alband.cli.main import main; sys.exit(main())",
                           *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


# -- in process -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _registries_restored(monkeypatch):
    """Plug-ins registered by a test leave the registries as they were (other tests list the names)."""
    import alband.policies.registry as policies
    import alband.routing.registry as routers

    saved = policies.POLICY_REGISTRY.snapshot(), routers.ROUTER_REGISTRY.snapshot()
    monkeypatch.setattr(sys, "path", list(sys.path))  # a config's folder joins it for its plug-in
    for module in ("plug_again", "plug_bad_hp"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    yield
    for module in ("plug_again", "plug_bad_hp"):
        sys.modules.pop(module, None)
    policies.POLICY_REGISTRY.restore(saved[0])
    routers.ROUTER_REGISTRY.restore(saved[1])


def test_a_module_path_resolves_to_the_registered_name_and_registering_again_is_not_an_error(tmp_path,
                                                                                              monkeypatch):
    _module_plugin(tmp_path, "plug_again", "again_entropy", "again_coin")
    assert resolve_plugin("plug_again:again_entropy", POLICIES, search=tmp_path) == "again_entropy"
    assert resolve_plugin("plug_again:again_coin", ROUTERS, search=tmp_path) == "again_coin"
    first = make_policy("again_entropy", noise=0.2)
    # A notebook cell run again: the same functions, defined anew, register under the same names.
    namespace = {"__name__": "plug_again"}
    exec(compile(PLUGIN_SOURCE.format(policy="again_entropy", router="again_coin"), "plug_again.py", "exec"),
         namespace)
    assert registered_factories()["again_entropy"] is namespace["again_entropy"]
    assert make_policy("again_entropy", noise=0.2) is not first  # the new definition is the one built


def test_a_different_function_under_a_taken_name_is_an_error():
    namespace = {"__name__": "elsewhere"}
    with pytest.raises(ValueError, match="query policy 'entropy' is registered twice"):
        exec("from alband.policies import register_policy\n@register_policy('entropy')\ndef entropy():\n    pass\n",
             namespace)


@pytest.mark.parametrize(("name", "message"), [
    ("no_such_module_xyz:thing", "cannot import module 'no_such_module_xyz'"),
    ("alband.policies.uncertainty:nothing_here", "has no attribute 'nothing_here'"),
    ("alband.policies.uncertainty:uncertainty_scores", "is not registered"),
    ("alband.policies.uncertainty:", "a plug-in path is 'package.module:function'"),
    ("no_such_policy", "unknown query policy 'no_such_policy'"),
])
def test_a_bad_policy_name_is_one_line_naming_the_config_key(name, message):
    text = CONFIG.format(policy=name, router="random")
    with pytest.raises(AlbandError, match=r"^run.toml: \[policy\] name: .*") as err:
        parse_config(text, source="run.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_hyper_parameters_of_a_plugin_policy_name_the_policy_section(tmp_path):
    _module_plugin(tmp_path, "plug_bad_hp", "hp_entropy", "hp_coin")
    text = CONFIG.format(policy="plug_bad_hp:hp_entropy", router="random").replace("noise = 0.05", "nose = 1")
    with pytest.raises(AlbandError, match=r"run.toml: \[policy\]: query policy 'hp_entropy': bad hyper-parameters"):
        parse_config(text, source="run.toml", base_dir=tmp_path)


def test_a_bad_router_plugin_names_the_routing_key():
    text = CONFIG.format(policy="entropy", router="no_such_module_xyz:coin").replace("noise = 0.05\n", "")
    with pytest.raises(AlbandError, match=r"run.toml: \[routing\] router: router 'no_such_module_xyz:coin': "
                                          r"cannot import"):
        parse_config(text, source="run.toml")


# -- end to end -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_module_path_plugin_runs_under_run_and_simulate(tmp_path):
    _reviews(tmp_path)
    _module_plugin(tmp_path, "mypolicies", "noisy_entropy", "coin")
    (tmp_path / "run.toml").write_text(CONFIG.format(policy="mypolicies:noisy_entropy", router="mypolicies:coin"))
    run = _cli(tmp_path, "run", "run.toml", "--out", "out", "--quiet")
    assert run.returncode == 0, run.stderr
    metrics = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["round"] == 2
    simulated = _cli(tmp_path, "simulate", "run.toml", "--seeds", "2", "--json", "--quiet")
    assert simulated.returncode == 0, simulated.stderr
    result = json.loads(simulated.stdout)
    assert result["routing"]["router"] == "coin" and len(result["seeds"]) == 2
    assert result["compile_seconds"] > 0 and result["simulate_seconds"] > 0


@pytest.mark.slow
def test_an_entry_point_plugin_runs_under_run_and_simulate(tmp_path):
    site = tmp_path / "site"
    _entry_point_plugin(site)
    work = tmp_path / "work"
    work.mkdir()
    _reviews(work)
    (work / "run.toml").write_text(CONFIG.format(policy="ep_entropy", router="ep_coin"))
    run = _cli(work, "run", "run.toml", "--out", "out", "--quiet", pythonpath=[site])
    assert run.returncode == 0, run.stderr
    assert (work / "out" / "metrics.jsonl").is_file()
    simulated = _cli(work, "simulate", "run.toml", "--seeds", "2", "--json", "--quiet", pythonpath=[site])
    assert simulated.returncode == 0, simulated.stderr
    assert json.loads(simulated.stdout)["routing"]["router"] == "ep_coin"
    listed = _cli(work, "policies", pythonpath=[site])
    assert listed.returncode == 0 and "ep_entropy" in listed.stdout and "noise=0.1" in listed.stdout


def test_a_bad_plugin_path_is_one_line_exit_2_and_no_run_directory(tmp_path):
    _reviews(tmp_path)
    (tmp_path / "run.toml").write_text(CONFIG.format(policy="mypolicies_missing:noisy_entropy", router="random"))
    run = _cli(tmp_path, "run", "run.toml", "--out", "out")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "cannot import module 'mypolicies_missing'" in run.stderr
    assert not (tmp_path / "out").exists()


def test_the_listings_show_hyper_parameters_defaults_and_a_line_of_doc(capsys):
    from alband.cli.main import main

    assert main(["routers", "--json"]) == 0
    routers = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert routers["cascade"]["parameters"]["target"] == "0.95"
    assert routers["cascade"]["parameters"]["audit_rate"] == "0.1"  # forwarded to the audit settings
    assert routers["cascade"]["parameters"]["chain"] == "every annotator, in order"
    assert routers["oracle"]["summary"].endswith("[evaluation only]")
    assert main(["policies", "--json"]) == 0
    policies = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert policies["bald"]["parameters"] == {"n_samples": "20", "prior_c": "1.0", "hessian": "'block'"}
    assert all(row["summary"] for row in policies.values())  # every policy has a line of documentation

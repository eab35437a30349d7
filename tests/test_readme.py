"""The README's Python example runs as written (in a scratch folder) and uses at most two imports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example() -> str:
    section = README.read_text().split("## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python API section has one example"
    return blocks[0]


def test_the_python_example_uses_at_most_two_imports():
    imports = [line for line in _python_example().splitlines() if re.match(r"\s*(import|from)\s", line)]
    assert 1 <= len(imports) <= 2, imports


@pytest.mark.slow
def test_the_python_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_example(), str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert re.search(r"entropy - random, final accuracy: [-0-9.]+ \[", out), out
    assert (tmp_path / "accuracy_vs_labels.png").stat().st_size > 0
    assert (tmp_path / "accuracy_vs_dollars.png").stat().st_size > 0
    assert (tmp_path / "runs" / "bbc-entropy" / "metrics.jsonl").is_file()
    assert re.search(r"live: 90 labels", out), out

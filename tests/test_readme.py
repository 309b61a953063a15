"""Every command of the README's tour and its Python example run as written."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from otus.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(lang: str, section: str) -> list[str]:
    part = README.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", part, flags=re.S)


def test_readme_opens_with_the_two_setup_commands() -> None:
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first is not None
    cmds = [ln.split("#")[0].strip() for ln in first.group(1).splitlines() if ln.strip()]
    assert cmds == ["make demo", "make test"]


@pytest.fixture
def in_tmp(tmp_path: Path):
    (tmp_path / "data").symlink_to(ROOT / "data")
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def test_tour_commands_run(in_tmp: Path) -> None:
    lines = [ln.strip() for b in _blocks("bash", "Tour") for ln in b.splitlines()]
    cmds = [ln for ln in lines if ln.startswith("otus ")]
    assert len(cmds) >= 12
    for ln in lines:
        if ln.startswith("mkdir -p "):
            (in_tmp / ln.split()[-1]).mkdir(parents=True)
        elif ln and not ln.startswith(("#", "otus ")):
            raise AssertionError(f"unexpected README tour line: {ln}")
    for cmd in cmds:
        rc = main(shlex.split(cmd)[1:])
        assert rc == 0, cmd
    for out in (
        "zee.h5",
        "run_timed/last.ckpt",
        "simulated.root",
        "unfolded.lhe.gz",
        "eval_sim/metrics.json",
        "zee_reweighted.h5",
        "zee_calibrated.h5",
        "zee_ot_region.h5",
        "simulated_tuned.h5",
        "run_unpaired/last.ckpt",
    ):
        assert (in_tmp / "tour" / out).exists(), out


def test_python_example_runs(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _blocks("python", "Python API")
    exec(compile(code, "README.md", "exec"), {})
    assert "median m_ee parton" in capsys.readouterr().out


def test_byo_cards_are_the_example_cards() -> None:
    """The README's cards are the shipped example cards (comments aside)."""
    from otus.processes import load_card, process_from_text

    cards = _blocks("yaml", "Bring your own final state")
    assert len(cards) == 2
    for text, name in zip(cards, ("zmumu", "wenu"), strict=True):
        assert process_from_text(text) == load_card(ROOT / "examples" / "cards" / f"{name}.yaml")


@pytest.mark.generate
def test_byo_commands_run(in_tmp: Path) -> None:
    pytest.importorskip("pythia8mc")
    (in_tmp / "examples").symlink_to(ROOT / "examples")
    block = _blocks("bash", "Bring your own final state")[0]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    assert lines[0] == "mkdir -p byo"
    (in_tmp / "byo").mkdir()
    for cmd in lines[1:]:
        assert cmd.startswith("otus "), cmd
        rc = main(shlex.split(cmd)[1:])
        assert rc == 0, cmd
    for out in ("zmumu_sim.h5", "zmumu_unfolded.lhe.gz", "zmumu_eval/metrics.json"):
        assert (in_tmp / "byo" / out).exists(), out
    assert (in_tmp / "byo" / "wenu_unfolded.h5").exists()

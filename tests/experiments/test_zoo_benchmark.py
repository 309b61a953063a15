"""experiments.zoo: the default configuration trained and evaluated on zoo detectors, paired
and unpaired, and the goals marked; and the default configuration trains end to end on every
detector of the zoo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import zoo
from otus.cli import main
from otus.generate.zoo import DETECTORS

pytest.importorskip("fastjet")


def test_zoo_trains_both_modes_and_marks_the_goals(tmp_path: Path) -> None:
    out = tmp_path / "zoo.json"
    argv = ["--processes", "zee", "--detectors", "crystalball", "--train-events", "2000"]
    argv += ["--test-events", "1000", "--budget", "00:00:00:04", "--work", str(tmp_path)]
    assert zoo.main([*argv, "--json", str(out), "--no-results"]) == 0
    rows = json.loads(out.read_text())
    assert [(r["detector"], r["mode"]) for r in rows] == [
        ("crystalball", "paired"),
        ("crystalball", "unpaired"),
    ]
    for r in rows:
        assert set(zoo.ZEE_SIM) <= set(r["report"]["simulate"])
        assert 0.4 < r["report"]["auc"]["simulate"][0] <= 1.0
        expected = {"sim mass", "sim others", "sim AUC", "unfold mass", "unfold AUC"}
        # the unpaired run is given the x sample's luminosity, so its pass rate has a goal
        assert set(r["goals"]) == expected | {"pass rate"}
    # the unpaired run learnt from two files: the ROOT file's x and the LHE file's z, and the
    # luminosity of the 2000 generated events (the built-in generator's 1 pb)
    unpaired = json.loads(
        (tmp_path / "runs" / "zee_crystalball_unpaired" / "provenance.json").read_text()
    )
    assert len(unpaired["inputs"]) == 2
    assert rows[1]["report"]["luminosity"] == pytest.approx(2000.0)
    text = "\n".join(zoo.tables(rows))
    assert "| crystalball | paired |" in text and "| crystalball | unpaired |" in text


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_default_config_trains_on_every_zoo_detector(detector: str, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    assert (
        main(
            [
                "generate",
                "zee",
                "--detector",
                detector,
                "--events",
                "2000",
                "--seed",
                "4",
                "--out",
                str(gen),
            ]
        )
        == 0
    )
    run = tmp_path / "run"
    assert (
        main(
            ["fit", "zee", "--data", str(gen / "events.h5"), "--out", str(run), "--max-epochs", "1"]
        )
        == 0
    )
    sim = tmp_path / "sim.h5"
    assert main(["simulate", str(run), "--input", str(gen / "events.h5"), "--out", str(sim)]) == 0
    assert sim.is_file()

"""experiments.evaluate_model: card-driven headline observables and the goals table."""

from __future__ import annotations

from pathlib import Path

from experiments import evaluate_model as em
from experiments.common import write_section
from otus.processes import TTBAR, ZEE, load_card

CARDS = Path(__file__).resolve().parents[2] / "examples" / "cards"


def test_mass_observable_follows_the_card() -> None:
    wenu, zmumu = load_card(CARDS / "wenu.yaml"), load_card(CARDS / "zmumu.yaml")
    assert (em.mass_observable(ZEE, "x"), em.mass_observable(ZEE, "z")) == ("m_ee", "m_ee")
    assert em.mass_observable(zmumu, "x") == "m_mumu"
    # W: transverse masses, (e, MET) at detector level and (e, ν) at parton level
    assert (em.mass_observable(wenu, "x"), em.mass_observable(wenu, "z")) == (
        "mt_emet",
        "mt_enu",
    )
    assert em.mass_observable(TTBAR, "x") == "m_W_had"
    assert em.headline(wenu, "z") == ["mt_enu", "e+_pt", "e+_E"]


def _report(sim: float, auc: float, unf: float, inputs: list[str]) -> dict[str, object]:
    return {
        "process": "wenu",
        "training": {"inputs": inputs, "epochs": 3, "steps": 495},
        "events": 40000,
        "pass_rate_truth": 0.707,
        "pass_rate_D(z)": 0.715,
        "mass_observable": {"x": "mt_emet", "z": "mt_enu"},
        "simulate": {"mt_emet": {"chi2_r": sim}},
        "unfold": {"mt_enu": {"chi2_r": unf}},
        "auc": {"simulate": [auc, 0.002]},
    }


def test_goals_table_marks_each_miss(tmp_path: Path) -> None:
    good = _report(2.0, 0.6, 9.0, ["/s/wenu_train/events.h5"])
    bad = _report(3.21, 0.779, 20.5, ["/s/wenu_train/events.h5", "/s/wenu_zonly.h5"])
    assert all(em.goal_row(good)["met"].values())
    assert not any(em.goal_row(bad)["met"].values())
    text = em.markdown([good, bad], {"command": "c", "machine": "m", "date": "d"})
    rows = [ln for ln in text.splitlines() if ln.startswith("| wenu")]
    assert len(rows) == 2
    assert "✗" not in rows[0] and rows[0].endswith("| all met |")
    assert rows[0].count("one paired file (wenu_train)") == 1
    assert rows[1].count("✗") == 3 and "unpaired: x wenu_train, z wenu_zonly.h5" in rows[1]
    assert "| 3 / 495 |" in rows[1]
    # a results-file section: a rerun replaces it, other sections stay
    out = tmp_path / "processes.md"
    write_section(out, "wenu", text, title="New final states")
    write_section(out, "other", "## other\n\nkept", title="New final states")
    write_section(
        out, "wenu", em.markdown([good], {"command": "c", "machine": "m", "date": "d"}), title="x"
    )
    final = out.read_text()
    assert final.startswith("# New final states\n") and final.count("| wenu") == 1
    assert final.index("<!-- begin wenu -->") < final.index("kept")

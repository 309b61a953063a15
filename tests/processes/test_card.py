"""Process cards: the built-ins, the schema of SPEC §5, and one-line errors for bad cards."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from otus.cli import main
from otus.errors import OtusError
from otus.processes import (
    BUILTIN_NAMES,
    TTBAR,
    ZEE,
    CardError,
    builtin_card_text,
    get_process,
    load_card,
    process_from_text,
)

ROOT = Path(__file__).resolve().parents[2]

# The card of SPEC §5, verbatim.
ZMUMU = """\
name: zmumu                  # [a-z0-9_]+
parton:                      # z, in this order: particles of the hard process
  - {name: mu-, pdg: 13}     # pdg: an id or a list of ids (any matches)
  - {name: mu+, pdg: -13}
detector:                    # x, in this order
  - {name: mu-, type: muon, charge: -1}   # type: electron | muon | photon | jet | met
  - {name: mu+, type: muon, charge: 1}    # charge (optional): only objects of that charge
selection:                   # x_pass, per object type, on reconstructed objects
  muon: {pt_min: 10, eta_max: 2.4, count: 2}    # count: exactly; min_count: at least
  electron: {pt_min: 10, eta_max: 2.5, count: 0}
anchor: mu+                  # reference particle of the anchoring loss (in both lists)
observables:                 # optional; evaluated at each level whose objects they name
  m_mumu: {mass: [mu-, mu+]} # mass | mt (transverse mass) | pt (of the sum)
"""


def test_builtins_keep_their_definitions() -> None:
    assert BUILTIN_NAMES == ("zee", "ttbar")
    assert ZEE.z_objects == ZEE.x_objects == ("e-", "e+")
    assert ZEE.z_masses == ZEE.x_masses == (0.000511, 0.000511)
    assert ZEE.anchor == (1, 1)
    assert ZEE.z_features[:4] == ("e-_px", "e-_py", "e-_pz", "e-_E")
    assert TTBAR.z_objects == ("e-", "nuebar", "b", "bbar", "q", "qbar")
    assert TTBAR.z_masses == (0.0, 0.0, 4.7, 4.7, 0.0, 0.0)
    assert TTBAR.x_objects == ("e-", "met", "jet1", "jet2", "jet3", "jet4")
    assert TTBAR.x_masses[:2] == (0.0, 0.0) and all(math.isnan(m) for m in TTBAR.x_masses[2:])
    assert TTBAR.anchor == (0, 0)
    assert TTBAR.mass_combos("z") == [(4, 5), (2, 4, 5), (0, 1, 3)]
    assert TTBAR.bias_sources("decode") == ([0, 1, 2, 3, 4, 5], [2, 3, 4, 5])
    assert TTBAR.bias_sources("encode") == ([0, 1, 2, 3, 4, 5], [])
    # The card text is the package data, and parses back to the same process.
    assert process_from_text(builtin_card_text("ttbar")) == TTBAR


def test_spec_card_parses(tmp_path: Path) -> None:
    card = tmp_path / "zmumu.yaml"
    card.write_text(ZMUMU)
    p = get_process(card)
    assert p.name == "zmumu" and p.z_objects == ("mu-", "mu+") and p.x_types == ("muon", "muon")
    assert p.z_masses == (0.0, 0.0) and p.x_masses == (0.0, 0.0)
    assert p.cut("muon").count == 2 and p.cut("electron").count == 0
    assert p.anchor == (1, 1)
    assert p.mass_combos("x") == [(0, 1)]
    assert p.default_features() == ("mu-_pt", "mu-_eta", "mu+_pt", "mu+_eta", "m_mumu")
    assert p.card_text == ZMUMU and p.source == str(card)


def test_default_masses_and_min_count() -> None:
    text = ZMUMU.replace("{name: mu-, pdg: 13}", "{name: mu-, pdg: 13, mass: 0.105}")
    text = text.replace("muon: {pt_min: 10, eta_max: 2.4, count: 2}", "muon: {min_count: 2}")
    p = process_from_text(text)
    assert p.z_masses == (0.105, 0.0)
    assert p.cut("muon").min_count == 2 and p.cut("muon").eta_max == math.inf
    top = process_from_text(ZMUMU.replace("pdg: 13}", "pdg: 6}").replace("pdg: -13}", "pdg: -6}"))
    assert top.z_masses == (172.5, 172.5)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("anchor: mu+", "anchor: mu+\ncolour: red"), r"card\.colour: unknown key"),
        (("{name: mu-, pdg: 13}", "{name: mu-, pdg: 13, spin: 1}"), r"parton\[0\]\.spin"),
        (("type: muon, charge: -1", "type: tau, charge: -1"), r"detector\[0\]\.type: unknown type"),
        (("anchor: mu+", "anchor: e+"), r"anchor: 'e\+' must name an object in both"),
        (("count: 2}", "count: 1}"), r"selection\.muon\.count: is 1 but the detector list has 2"),
        (
            ("  muon: {pt_min: 10, eta_max: 2.4, count: 2}", "  photon: {count: 0}"),
            r"selection\.muon: missing",
        ),
        (("pdg: -13}", "pdg: -1.5}"), r"parton\[1\]\.pdg: must be a PDG id"),
        (("name: zmumu", "name: Z-mumu"), r"name: must match"),
        (("[mu-, mu+]", "[mu-, tau]"), r"observables\.m_mumu: names 'tau'"),
        (("{name: mu+, pdg: -13}", "{name: mu-, pdg: -13}"), r"parton: object name 'mu-' is used"),
        (("charge: 1}", "charge: 2}"), r"detector\[1\]\.charge: must be -1 or 1"),
        (("count: 2}", "count: 2, min_count: 2}"), r"selection\.muon: give exactly one"),
    ],
)
def test_bad_cards_name_card_and_key(tmp_path: Path, edit: tuple[str, str], key: str) -> None:
    old, new = edit
    assert old in ZMUMU
    card = tmp_path / "bad.yaml"
    card.write_text(ZMUMU.replace(old, new, 1))
    with pytest.raises(CardError, match=rf"^{re.escape(str(card))}: {key}") as info:
        load_card(card)
    assert "\n" not in str(info.value)


def test_unknown_process_and_unreadable_card(tmp_path: Path) -> None:
    with pytest.raises(OtusError, match=r"unknown process 'wz'.*path of a process card"):
        get_process("wz")
    with pytest.raises(CardError, match="no such process card"):
        get_process(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(CardError, match=r"bad\.yaml: not valid YAML"):
        load_card(bad)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(CardError, match="a process card is a YAML mapping"):
        load_card(tmp_path / "list.yaml")


def test_ttbar_builtin_observable_checks_the_card() -> None:
    text = builtin_card_text("ttbar").replace("  - {name: jet4, type: jet}\n", "")
    text = text.replace("count: 4}", "count: 3}")
    with pytest.raises(CardError, match="ttbar_semileptonic needs"):
        process_from_text(text, where="tt3.yaml")


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def test_cli_bad_card_one_line_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = tmp_path / "bad.yaml"
    card.write_text(ZMUMU.replace("type: muon, charge: -1", "type: muons, charge: -1"))
    out = tmp_path / "ev.h5"
    rc, err = _run(
        capsys, "convert", card, "--delphes", ROOT / "data/zee/delphes.root", "--out", out
    )
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml: detector[0].type: unknown type 'muons'" in lines[0]
    assert not out.exists()


def test_card_contradicting_the_event_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event file carries its card; a different card of the same name is refused."""
    card = tmp_path / "zee.yaml"
    card.write_text(builtin_card_text("zee").replace("eta_max: 2.5", "eta_max: 2.4"))
    run = tmp_path / "run"
    rc, err = _run(
        capsys,
        "fit",
        card,
        "--data",
        ROOT / "data/zee/events.h5",
        "--out",
        run,
        "--max-epochs",
        "1",
    )
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert "zee.yaml: selection.electron: contradicts the card stored in" in line
    assert not (run / "last.ckpt").exists()


def test_card_round_trips_through_event_file_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A converted file stores the card; fit finds it by name; the run needs no card."""
    card = tmp_path / "zee2.yaml"
    card.write_text(builtin_card_text("zee").replace("name: zee", "name: zee2"))
    ev = tmp_path / "ev.h5"
    rc, err = _run(
        capsys,
        "convert",
        card,
        "--lhe",
        ROOT / "data/zee/parton.lhe.gz",
        "--delphes",
        ROOT / "data/zee/delphes.root",
        "--out",
        ev,
        "--max-events",
        "600",
    )
    assert rc == 0, err
    from otus.io.h5 import info, read_events

    assert info(ev).process == load_card(card)
    ref = read_events(ROOT / "data/zee/events.h5")
    got = read_events(ev)
    np.testing.assert_array_equal(got.x[got.x_pass], ref.x[:600][ref.x_pass[:600]])
    card.unlink()  # later commands need no card file
    run = tmp_path / "run"
    cfg = tmp_path / "small.yaml"
    cfg.write_text("data: {batch_size: 64}\n")
    rc, err = _run(
        capsys, "fit", "zee2", "--data", ev, "--config", cfg, "--out", run, "--max-epochs", "1"
    )
    assert rc == 0, err
    sim = tmp_path / "sim.h5"
    rc, err = _run(capsys, "simulate", run, "--input", ev, "--out", sim)
    assert rc == 0, err
    assert read_events(sim).process.name == "zee2"


def test_pdg_id_that_no_event_has(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A card asking for particles the file never holds names the card and the entry."""
    card = tmp_path / "zee_taus.yaml"
    card.write_text(builtin_card_text("zee").replace("pdg: -11", "pdg: -15"))
    out = tmp_path / "ev.h5"
    rc, err = _run(capsys, "convert", card, "--lhe", ROOT / "data/zee/parton.lhe.gz", "--out", out)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "parton.lhe.gz: none of its 10000 events holds the zee partons" in lines[0]
    assert "zee_taus.yaml: parton[1].pdg: no event has an outgoing -15" in lines[0]
    assert not out.exists()

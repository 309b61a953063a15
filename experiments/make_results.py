"""Assemble experiments/RESULTS.md from the result files the benchmark scripts write into
experiments/results/ (each records its own command, machine and date).

    python experiments/make_results.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "processes",
    "processes_ttbar_min_count",
    "fidelity",
    "model",
    "demo",
    "speed",
    "memory",
    "memory_convert",
    "memory_caps",
    "generate",
    "generate_validation",
    "reweight",
    "reweight_seed1",
    "reweight_seed1_repeats4",
    "reweight_seed1_mixture_n200k",
    "reweight_ema",
    "reweight_ema_seed1",
    "reweight_ema_zee200k",
    "reweight_ema_repeats4_seed0",
    "reweight_ema_repeats4_seed1",
    "reweight_ema_mixture_seed2",
    "reweight_ema_mixture_seed3",
    "reweight_fit_on_electrons",
    "reweight_k10_mixture_seed0",
    "reweight_k10_mixture_seed2",
    "reweight_platt",
    "reweight_platt_seed1",
    "reweight_platt_mixture_seed0",
    "reweight_platt_mixture_seed1",
    "reweight_platt_mixture_seed2",
    "reweight_platt_mixture_seed3",
    "reweight_platt_mixture_seed4",
    "reweight_platt_mixture_seed5",
    "reweight_platt_repeats4_mixture_seed0",
    "reweight_platt_repeats4_mixture_seed1",
    "reweight_platt_repeats4_mixture_seed2",
    "reweight_platt_repeats4_mixture_seed3",
    "reweight_bigbatch_mixture_seed0",
    "reweight_bigbatch_mixture_seed1",
    "reweight_bigbatch_mixture_seed2",
    "reweight_bigbatch_mixture_seed3",
    "reweight_noise_sweep_seed0",
    "reweight_noise_sweep_seed1",
    "reweight_noise_sweep_seed2",
    "reweight_mlc_mixture_seed0",
    "reweight_mlc_mixture_seed1",
    "reweight_platt_mixture_n200k_seed0",
    "reweight_platt_mixture_n200k_seed1",
    "reweight_w64_mixture_seed0",
    "reweight_w64_mixture_seed1",
    "reweight_w64_mixture_seed2",
    "reweight_w64_mixture_seed3",
    "reweight_ema3_mixture_seed0",
    "reweight_ema3_mixture_seed1",
    "reweight_platt_zee200k",
    "reweight_error_anatomy_seed0",
    "reweight_error_anatomy_seed2",
    "ot",
    "ot_stochastic",
    "ot_stochastic_r1.1",
    "reliability",
    "io",
]


def main() -> None:
    parts = sorted(
        (HERE / "results").glob("*.md"),
        key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem),
    )
    out = [
        "# Results",
        "",
        "Every section below is written by a script in `experiments/` (its command, machine and",
        "date are in the section); this file is assembled by `python experiments/make_results.py`.",
        "Rows that miss a goal are reported as they are.",
        "",
        "Contents: " + ", ".join(f"[{p.stem}](results/{p.name})" for p in parts),
        "",
    ]
    for p in parts:
        text = p.read_text().strip()
        # Demote headings by one level so the sections nest under this page's title.
        text = "\n".join("#" + ln if ln.startswith("#") else ln for ln in text.splitlines())
        out += [text, ""]
    (HERE / "RESULTS.md").write_text("\n".join(out))
    print(f"wrote {HERE / 'RESULTS.md'} from {len(parts)} result files")


if __name__ == "__main__":
    main()

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from otus.report import Section, write_report


def test_report_embeds_figures(tmp_path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png = tmp_path / "line.png"
    fig.savefig(png)
    plt.close(fig)
    md, page = write_report(
        tmp_path,
        "Demo",
        [
            Section("Stage", "It ran.", [["metric", "value"], ["AUC", "0.51"]], [png]),
        ],
    )
    text = md.read_text()
    assert "| AUC | 0.51 |" in text and "![line](line.png)" in text
    body = page.read_text()
    assert "data:image/png;base64," in body and "<td>0.51</td>" in body

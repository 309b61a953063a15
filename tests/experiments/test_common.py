"""experiments.common and experiments.make_results: results-file sections and RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from experiments.common import RESULTS, command, header, table, write_section
from experiments.make_results import CAPABILITIES, headline


def test_sections_are_replaced_in_place(tmp_path: Path) -> None:
    out = tmp_path / "cap.md"
    write_section(out, "a", ["## A", "", "one"], title="Capability")
    write_section(out, "b", "## B\n\ntwo", title="ignored: the file exists")
    write_section(out, "a", ["## A", "", "three"], title="Capability")
    text = out.read_text()
    assert text.startswith("# Capability\n")
    assert "one" not in text and text.index("three") < text.index("two")
    assert text.count("<!-- begin a -->") == text.count("<!-- end a -->") == 1


def test_header_and_table() -> None:
    lines = header("T", command="python -m experiments.x --n 1", machine="m", date="d")
    assert lines[:4] == ["## T", "", "- command: `python -m experiments.x --n 1`", "- machine: m"]
    assert lines[4:] == ["- date: d", ""]
    assert table("a | b", [[1, "x"]]) == ["| a | b |", "|---|---|", "| 1 | x |"]
    assert command("bench_io", ["--events", "10", "--lhe-dir", "a b"]) == (
        "python -m experiments.bench_io --events 10 --lhe-dir 'a b'"
    )


def test_headline_is_the_first_table_with_its_command() -> None:
    text = (
        "# Cap\n\n<!-- begin k -->\n## S\n\n- command: `c`\n\n| a |\n|---|\n| 1 |\n\nmore\n"
        "| b |\n<!-- end k -->\n"
    )
    assert headline(text) == ["### S", "", "- command: `c`", "", "| a |", "|---|", "| 1 |"]


def test_every_capability_with_a_file_has_it() -> None:
    for _, stem, script in CAPABILITIES:
        assert (stem is None) == (script == "(future)")
        if stem is not None:
            assert (RESULTS / f"{stem}.md").is_file(), stem

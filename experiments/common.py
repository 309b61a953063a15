"""What the benchmark scripts share: paths, the machine line, the command line, Markdown
tables and the sections of a results file.

Each capability has one results file, ``experiments/results/<capability>.md``. A script
writes its *section* of that file (between ``<!-- begin KEY -->`` and ``<!-- end KEY -->``)
with :func:`write_section`: a rerun replaces that section and leaves the others alone, so
seeds and variants are rows of a section's table, never files of their own.
"""

from __future__ import annotations

import contextlib
import csv
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
DATA = ROOT / "data"

# Peak RSS (kB), wall time and exit code of a child command, measured from a wrapper process
# whose only child it is (RUSAGE_CHILDREN is a maximum over all children ever waited for).
_PROBE = (
    "import resource, subprocess, sys, time; t=time.time(); "
    "r=subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time()-t, r.returncode)"
)


def machine(threads: str = "1 torch thread") -> str:
    """Host, CPU model and count, OS, GPU (if any), torch version and ``threads``."""
    import torch

    info: dict[str, str] = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        info = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())}
    except OSError:
        pass
    cpu = info.get("Model name") or platform.processor() or "unknown CPU"
    cores = info.get("CPU(s)") or str(os.cpu_count())
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{platform.node()}: {cpu}, {cores} CPUs{gpu}, {platform.system()} "
        f"{platform.release()}, torch {torch.__version__}, {threads}"
    )


def now() -> str:
    """The date line of a results section (UTC, to the minute)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def command(module: str, argv: Sequence[str] | None = None) -> str:
    """The command line that reruns ``experiments.<module>`` with ``argv`` (default: this
    process's arguments)."""
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", "-m", f"experiments.{module}", *args])


def header(
    title: str, *, command: str, machine: str, date: str | None = None, notes: Iterable[str] = ()
) -> list[str]:
    """A section's heading and its command / machine / date lines."""
    lines = [f"## {title}", "", f"- command: `{command}`", f"- machine: {machine}"]
    lines.append(f"- date: {date or now()}")
    lines += [f"- {n}" for n in notes]
    return [*lines, ""]


def table(head: str | Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table; ``head`` is a list of column names or one string ``"a | b | c"``."""
    if isinstance(head, str):
        head = [h.strip() for h in head.split("|")]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def results_path(name: str) -> Path:
    """``experiments/results/<name>.md``."""
    return RESULTS / f"{name}.md"


def write_section(path: str | Path, key: str, text: str | Sequence[str], *, title: str) -> Path:
    """Replace the section ``key`` of the results file ``path`` by ``text`` (append it when
    the file has no such section; create the file, headed ``# title``, when missing)."""
    path = Path(path)
    body = text if isinstance(text, str) else "\n".join(text)
    block = f"<!-- begin {key} -->\n{body.strip()}\n<!-- end {key} -->"
    old = path.read_text() if path.is_file() else f"# {title}\n"
    pat = re.compile(rf"<!-- begin {re.escape(key)} -->\n.*?<!-- end {re.escape(key)} -->", re.S)
    new = (
        pat.sub(lambda _: block, old, count=1) if pat.search(old) else f"{old.rstrip()}\n\n{block}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new.rstrip() + "\n")
    tmp.replace(path)
    print(f"wrote section {key!r} of {path}")
    return path


@contextlib.contextmanager
def work_dir(path: str | Path | None, prefix: str) -> Iterator[Path]:
    """``path`` (created, kept: a cache for generated samples) or a temporary folder."""
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix=f"otus-{prefix}-") as d:
        yield Path(d)


def run_otus(*args: object, check: bool = True, threads: int = 1, quiet: bool = False) -> int:
    """Run one otus command in a fresh process (its own threads and memory); its exit code.

    Small networks: more intra-op threads than free cores make each step several times
    slower (threads wait on each other), so the thread count is the caller's option.
    ``quiet`` discards the command's output (the command line is printed either way)."""
    cmd = [sys.executable, "-m", "otus", *map(str, args)]
    print("$", " ".join(cmd[2:]), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(cmd, check=check, env=env, stdout=out, stderr=out).returncode


def peak_rss(cmd: Sequence[str], cwd: Path = ROOT) -> tuple[float, float, int]:
    """Peak RSS [MB], wall time [s] and exit code of ``cmd`` run in a fresh process."""
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, *cmd], capture_output=True, text=True, cwd=cwd, check=False
    )
    rss_kb, wall, rc = res.stdout.split()[-3:]
    if int(rc) != 0:
        print(res.stderr[-2000:], file=sys.stderr)
    return int(rss_kb) / 1024, float(wall), int(rc)


def run_progress(run: str | Path) -> tuple[int, int] | None:
    """(epochs begun, optimizer steps done) of a trained run, as its metrics.csv logs them;
    None when it logged nothing."""
    metrics = Path(run) / "metrics.csv"
    if not metrics.is_file():
        return None
    with metrics.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("epoch") and r.get("step")]
    if not rows:
        return None
    return (
        max(int(float(r["epoch"])) for r in rows) + 1,
        max(int(float(r["step"])) for r in rows) + 1,
    )

"""``generate``: the built-in MadGraph + Delphes stand-in.

Parton level from Pythia's hard process (:mod:`otus.generate.pythia`), detector level from
the same events after shower through a parametric detector (:mod:`otus.generate.reconstruct`;
the Delphes CMS card by default, or another of :data:`otus.generate.zoo.DETECTORS`). The
detector draws from its own random stream, so the same seed gives the same parton-level
events (and showers) whatever the detector. Writes ``events.h5`` (z and x paired row by row),
``parton.lhe.gz`` (z, with the incoming partons) and ``delphes.root`` (the detector
collections), all three with the same provenance.
All files are written into a temporary folder beside the outputs and moved into place only
when everything succeeded, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from otus.errors import OtusError
from otus.generate import detector as det
from otus.generate.pythia import PythiaSource, check_seed, hadronises
from otus.generate.reconstruct import reconstruct
from otus.generate.zoo import get_detector
from otus.io.delphes import write_delphes
from otus.io.h5 import Events, EventWriter
from otus.io.lhe import write_lhe
from otus.physics.selection import build_x
from otus.processes import Process, get_process
from otus.provenance import provenance

# Events per Pythia batch; records with hadronisation are large, keep memory modest.
BATCH, BATCH_HADRONISED = 1000, 100
OUTPUTS = ("events.h5", "parton.lhe.gz", "delphes.root")


def _prepare_out(out_dir: str | os.PathLike[str]) -> tuple[Path, bool]:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OtusError(f"{out}: exists and is not a folder")
    created = False
    if not out.exists():
        if not out.parent.is_dir():
            raise OtusError(f"{out}: parent folder {out.parent} does not exist")
        try:
            out.mkdir()
        except OSError as err:
            raise OtusError(f"{out}: cannot create output folder ({err.strerror})") from None
        created = True
    if not os.access(out, os.W_OK | os.X_OK):
        if created:
            out.rmdir()
        raise OtusError(f"{out}: output folder is not writable")
    return out, created


def generate(
    process: str | Process,
    n_events: int,
    *,
    seed: int,
    out_dir: str | os.PathLike[str],
    resolution_scale: float = 1.0,
    energy_scale: float = 1.0,
    efficiency_scale: float = 1.0,
    detector: str | det.Detector = "cms",
    progress: bool = True,
) -> dict[str, Any]:
    """Generate ``n_events`` paired events of ``process`` into ``out_dir``.

    ``detector``: a name in :data:`otus.generate.zoo.DETECTORS` (``cms``, ``atlas``,
    ``cms_radiative``, ``crystalball``) or a :class:`~otus.generate.detector.Detector`; its
    name is recorded in the provenance (``detector``).

    Same arguments, same files (no time stamps are stored). Returns a summary:
    ``{"n_events", "pass_rate", "rate" (events/s), "seconds", "tries", "files"}``.

    Example (needs the ``generate`` extra)::

        summary = generate("zee", 1000, seed=1, out_dir="zee_sample")
    """
    proc = get_process(process)
    if not isinstance(n_events, (int, np.integer)) or isinstance(n_events, bool) or n_events < 1:
        raise OtusError(f"the number of events must be a positive integer, got {n_events!r}")
    check_seed(seed)
    opts = det.DetectorOptions(resolution_scale, energy_scale, efficiency_scale)
    detector_ = get_detector(detector)
    try:
        import fastjet  # noqa: F401
        import pythia8mc  # noqa: F401
    except ImportError as err:
        raise OtusError(
            f"otus generate needs pythia8mc and fastjet: pip install 'otus[generate]' ({err})"
        ) from None
    out, created = _prepare_out(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".otus-generate-", dir=out))
    try:
        summary = _run(proc, int(n_events), seed, opts, detector_, tmp, progress)
        umask = os.umask(0)
        os.umask(umask)
        for name in summary["files"]:
            os.chmod(tmp / name, 0o666 & ~umask)  # temp files are private; finals are not
            os.replace(tmp / name, out / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    summary["files"] = [str(out / name) for name in summary["files"]]
    return summary


def _run(
    proc: Any,
    n: int,
    seed: int,
    opts: det.DetectorOptions,
    detector: det.Detector,
    tmp: Path,
    progress: bool,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    source = PythiaSource(proc, seed)
    rng = np.random.default_rng([seed, 0x0DE7EC7])
    label = f"{detector.name}: {detector.source}"
    prov = provenance(
        seed=seed,
        generator=f"otus generate ({source.version}; detector {label})",
        process=proc.name,
        detector=detector.name,
        n_events=n,
        pythia_settings=source.settings,
        resolution_scale=opts.resolution_scale,
        energy_scale=opts.energy_scale,
        efficiency_scale=opts.efficiency_scale,
    )
    prov["generator"] = prov["settings"]["generator"]
    prov["detector"] = detector.name
    zs, incs, recos, weights = [], [], [], []
    n_pass = 0
    bar = tqdm(
        total=n,
        unit="ev",
        desc=f"generate {proc.name}",
        disable=None if progress else True,
        leave=False,
    )
    batch = BATCH_HADRONISED if hadronises(proc) else BATCH
    with EventWriter(tmp / "events.h5", proc, has_z=True, has_x=True, provenance=prov) as w:
        done = 0
        while done < n:
            z64, inc, particles = source.next_batch(min(batch, n - done))
            z = z64.astype(np.float32)  # what every output stores
            if len(z) == 0:
                raise OtusError(f"Pythia produced no {proc.name} events (generator failure)")
            reco = reconstruct(particles, rng, opts, detector)
            x, x_pass = build_x(proc, reco)
            weight = np.ones(len(z), dtype=np.float64)
            w.append(Events(proc, z=z, x=x, x_pass=x_pass, weight=weight))
            zs.append(z)
            incs.append(inc)
            recos.append(reco)
            weights.append(weight)
            n_pass += int(x_pass.sum())
            done += len(z)
            bar.update(len(z))
        # The cross-section of parton.lhe.gz's init block (the mean event weight, pb), so that
        # the paired file can serve as the z sample of a yield (otus fit --luminosity).
        w.set_metadata(cross_section_pb=float(np.concatenate(weights).mean()))
    bar.close()
    write_lhe(
        tmp / "parton.lhe.gz",
        proc,
        np.concatenate(zs),
        np.concatenate(weights),
        incoming_pdg=np.concatenate(incs),
        provenance=prov,
    )
    reco_all = {k: ak.concatenate([r[k] for r in recos]) for k in recos[0]}
    write_delphes(tmp / "delphes.root", reco_all, np.concatenate(weights), provenance=prov)
    seconds = time.perf_counter() - t0
    return {
        "process": proc.name,
        "detector": detector.name,
        "n_events": n,
        "pass_rate": n_pass / n,
        "seconds": seconds,
        "rate": n / seconds,
        "tries": source.tries,
        "files": list(OUTPUTS),
    }

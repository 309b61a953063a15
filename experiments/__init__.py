"""The benchmark suite: one script per capability, run from the repository root as
``python -m experiments.NAME``; each writes its section of ``experiments/results/<name>.md``
(see experiments/README.md). Shared helpers: :mod:`experiments.common`."""

"""Event file formats: the otus HDF5 file, LHE, Delphes ROOT and CMS NanoAOD ROOT."""

from otus.io.h5 import Events, EventWriter, info, iter_chunks, read_events, write_events

__all__ = ["EventWriter", "Events", "info", "iter_chunks", "read_events", "write_events"]

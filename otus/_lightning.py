"""Lightning's console output without its product advertisements.

Recent Lightning versions make every ``Trainer`` log a "💡 Tip: ... try installing
litlogger" (or litmodels) line at INFO level through Lightning's rank-zero logger. There is
no option to turn it off, so :func:`drop_tips` puts a filter on that logger which drops those
records and passes every other one (device summary, stop reason, warnings).
"""

from __future__ import annotations

import logging

# The rank-zero logger is named after the package that set it last (pytorch_lightning, or
# the unified ``lightning`` package); filter all of them.
_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
)
_TIP = "💡 Tip:"


class _NoTips(logging.Filter):
    """Drop records whose message starts with Lightning's "💡 Tip:" prefix."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIP)


def drop_tips() -> None:
    """Filter Lightning's "💡 Tip: ..." advertisements out of its log; idempotent.

    Works before or after ``pytorch_lightning`` is imported: the filter sits on the named
    loggers, which Lightning looks up by name.

    >>> import logging
    >>> drop_tips(); drop_tips()
    >>> log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    >>> sum(isinstance(f, _NoTips) for f in log.filters)
    1
    """
    for name in _LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoTips) for f in log.filters):
            log.addFilter(_NoTips())

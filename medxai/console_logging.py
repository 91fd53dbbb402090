"""Console logging of the ``medxai`` command: medxai's own loggers, and less Lightning noise."""

from __future__ import annotations

import logging

# Lightning 2.6 logs an advertisement for its cloud logger at every Trainer start.
LIGHTNING_TIP_PREFIX = "💡 Tip:"
LIGHTNING_INFO_LOGGER = "lightning.pytorch.utilities.rank_zero"


def _drop_lightning_tips(record: logging.LogRecord) -> bool:
    """Return False for Lightning's advertising tips, so that only run information is logged."""
    return not str(record.msg).startswith(LIGHTNING_TIP_PREFIX)


def configure_logging() -> None:
    """Log medxai's and the callbacks' INFO messages to stderr, and drop Lightning's tips."""
    info_logger = logging.getLogger(LIGHTNING_INFO_LOGGER)
    if _drop_lightning_tips not in info_logger.filters:
        info_logger.addFilter(_drop_lightning_tips)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("medxai", "callbacks"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False

"""structlog set-up shared by every process: JSON when not on a terminal, console otherwise.

Standard-library logging (faust, aiokafka, kafka-python) goes through the same renderer, so a
process writes one format whatever library logged the line, and through the same personal-data
mask (``omnirouter.logmask``) unless ``log.mask_personal_data`` is off.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from omnirouter.logmask import mask_personal_data
from omnirouter.settings import LogSettings

# httpx logs every request (the demo simulator, the /ops scraper); aiosmtpd ("mail.log") every
# SMTP command; kafka.admin warns on every describe of a faust group (member metadata it cannot
# decode, harmless) — every few seconds from the lag monitor.
_NOISY_LIBRARIES = ("kafka", "aiokafka", "faust", "mode", "httpx", "httpcore", "mail.log")
_QUIET_LOGGERS = ("kafka.admin",)


def configure_logging(settings: LogSettings, *, stream: Any = None) -> None:
    """Configure structlog and the standard library's root logger once per process."""
    out = stream if stream is not None else sys.stderr
    use_json = settings.format == "json" or (settings.format == "auto" and not out.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    masking: list[structlog.typing.Processor] = []
    if settings.mask_personal_data:
        # Tracebacks become text first so the mask sees them: the console's pretty (rich)
        # tracebacks print local variables, which hold events, text and identifiers.
        masking = [mask_personal_data]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        # Both structlog's own lines and foreign stdlib records pass through these last steps.
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([structlog.processors.format_exc_info] if use_json or masking else []),
            *masking,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # Client libraries log every reconnect at INFO; keep them to warnings unless debugging.
    library_level = logging.DEBUG if settings.level == "DEBUG" else logging.WARNING
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.DEBUG if settings.level == "DEBUG" else logging.ERROR
        )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named after the calling module."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger

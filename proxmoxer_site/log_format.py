"""Log lines as docs/product-contract.md §16 writes them: ``[INFO] ...``,
``[WARN] ...``."""

import logging
import time


class LogLineFormatter(logging.Formatter):
    converter = time.gmtime  # timestamps in UTC, like the API's

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.WARNING:
            record = logging.makeLogRecord({**record.__dict__, "levelname": "WARN"})
        return super().format(record)

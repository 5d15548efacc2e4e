"""Hot reload: a normalizer that follows its database file without a server restart.

`ReloadingNormalizer.current()` checks the file's modification time at most every `interval` seconds and
compiles a new Normalizer when it changed. A database that fails validation is refused: the last good one
stays in force and `last_error` says why, so an editing mistake never takes moderation down.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from normalizer.database import PatternDatabaseError, load_database
from normalizer.matcher import Normalizer

log = logging.getLogger(__name__)


class ReloadingNormalizer:
    def __init__(self, path: Path | str, interval: float = 2.0):
        self.path = Path(path)
        self.interval = interval
        self._lock = threading.Lock()
        self._normalizer = Normalizer(load_database(self.path))  # the first load must succeed
        self._stamp = self._file_stamp()
        self._next_check = time.monotonic() + interval
        self.last_error: str | None = None
        self.reloads = 0

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> Normalizer:
        if self.interval > 0 and time.monotonic() >= self._next_check:
            self.check()
        return self._normalizer

    def check(self) -> bool:
        """Reload if the file changed. Returns True when a new database was put in force."""
        with self._lock:
            self._next_check = time.monotonic() + self.interval
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            return self._load()

    def reload(self) -> bool:
        """Reload now, whether or not the file changed."""
        with self._lock:
            self._stamp = self._file_stamp()
            return self._load()

    def _load(self) -> bool:
        try:
            fresh = Normalizer(load_database(self.path))
        except PatternDatabaseError as exc:
            self.last_error = str(exc)
            log.error("pattern database refused, keeping version %s: %s", self._normalizer.version, exc)
            return False
        self._normalizer = fresh
        self.last_error = None
        self.reloads += 1
        log.info("pattern database %s loaded (%d entries)", fresh.version, len(fresh.db))
        return True

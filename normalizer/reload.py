"""Hot reload: a normalizer that follows its database file without a server restart, off the request path.

`ReloadingNormalizer.current()` only returns the normalizer in force: it never reads, validates or compiles
anything, so a request never waits for a reload. With `interval > 0`, a background thread checks the file's
modification time and size every `interval` seconds; when they change it loads, validates and compiles the new
database on its own and swaps it in only when all of that succeeded. A database that fails validation (or is
larger than `MAX_DATABASE_BYTES`) is refused: the last good one stays in force and `last_error` says why, so an
editing mistake never takes moderation down. Pattern checks never run a backtracking regex engine
(normalizer.regex_safety), so a reload cannot hang either; at worst it is slow, and only the thread waits.

`check()` and `reload()` do the same work synchronously (tests, the CLI).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path

from normalizer.database import PatternDatabaseError, load_database
from normalizer.matcher import Normalizer

log = logging.getLogger(__name__)

MAX_DATABASE_BYTES = 64 << 20  # the shipped file is about 0.5 MB
_MIN_POLL_SECONDS = 0.02


class ReloadingNormalizer:
    def __init__(self, path: Path | str, interval: float = 2.0):
        self.path = Path(path)
        self.interval = interval
        self._lock = threading.Lock()  # one load at a time; current() never takes it
        self._normalizer = Normalizer(load_database(self.path))  # the first load must succeed
        self._stamp = self._file_stamp()
        self.last_error: str | None = None
        self.reloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval > 0:
            self._thread = threading.Thread(
                target=_watch, args=(weakref.ref(self), self._stop, max(interval, _MIN_POLL_SECONDS)),
                name=f"pattern-db-reload:{self.path.name}", daemon=True,
            )  # fmt: skip
            self._thread.start()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> Normalizer:
        """The normalizer in force. Never blocks: reloads happen on the background thread."""
        return self._normalizer

    @property
    def version(self) -> str:
        return self._normalizer.version

    def check(self) -> bool:
        """Reload if the file changed. Returns True when a new database was put in force."""
        with self._lock:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            return self._load(stamp)

    def reload(self) -> bool:
        """Reload now, whether or not the file changed."""
        with self._lock:
            self._stamp = self._file_stamp()
            return self._load(self._stamp)

    def close(self) -> None:
        """Stop the background thread (it also stops by itself when this object is garbage-collected)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _load(self, stamp: tuple[int, int] | None) -> bool:
        try:
            if stamp is not None and stamp[1] > MAX_DATABASE_BYTES:
                raise PatternDatabaseError(self.path, [f"the file has {stamp[1]} bytes; the limit is {MAX_DATABASE_BYTES}"])
            fresh = Normalizer(load_database(self.path))
        except PatternDatabaseError as exc:
            self.last_error = str(exc)
            log.error("pattern database refused, keeping version %s: %s", self._normalizer.version, exc)
            return False
        except Exception as exc:  # a bug in loading must not kill the thread nor replace the good database
            self.last_error = f"loading {self.path} failed: {type(exc).__name__}: {exc}"
            log.exception("pattern database reload failed, keeping version %s", self._normalizer.version)
            return False
        self._normalizer = fresh  # one reference assignment: requests see the old or the new database, whole
        self.last_error = None
        self.reloads += 1
        log.info("pattern database %s loaded (%d entries)", fresh.version, len(fresh.db))
        return True


def _watch(ref: weakref.ref, stop: threading.Event, poll: float) -> None:
    """The reload thread: holds its normalizer only weakly, so a dropped ReloadingNormalizer ends it."""
    while not stop.wait(poll):
        owner = ref()
        if owner is None:
            return
        try:
            owner.check()
        except Exception:  # never let the thread die
            log.exception("pattern database check failed")
        del owner

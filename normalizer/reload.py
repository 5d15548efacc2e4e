"""Hot reload: a normalizer that follows its database file without a server restart, off the request path.

`ReloadingNormalizer.current()` only returns the normalizer in force: it never reads, validates or compiles
anything, so a request never waits for a reload. With `interval > 0`, a background thread checks the file's
modification time and size every `interval` seconds; when they change it loads, validates and compiles the new
database on its own and swaps it in only when all of that succeeded. A database that fails validation (or is
larger than `MAX_DATABASE_BYTES`) is refused: the last good one stays in force and `last_error` says why, so an
editing mistake never takes moderation down. Pattern checks never run a backtracking regex engine
(normalizer.regex_safety), so a reload cannot hang either; at worst it is slow, and only the thread waits.

`check()` and `reload()` do the same work synchronously (tests, the CLI).

With `last_good` (a server's processes), every database put in force is also copied there, and a start that finds
the file broken serves that copy (with `last_error` saying so): a server process restarted, or a moderation child
started, while someone's edit is half-done keeps moderating instead of failing to start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
import threading
import weakref
from pathlib import Path

from normalizer.database import PatternDatabaseError, load_database
from normalizer.matcher import Normalizer

log = logging.getLogger(__name__)

MAX_DATABASE_BYTES = 64 << 20  # the shipped file is about 0.5 MB
_MIN_POLL_SECONDS = 0.02


def default_last_good(path: Path | str) -> Path | None:
    """A private place (a folder of this user's, mode 0700, under the temp folder) for the last good copy of the
    database at `path`; None when there is none to be had (no such folder can be made, or another user owns it)."""
    resolved = str(Path(path).resolve())
    folder = Path(tempfile.gettempdir()) / f"algospeak-patterns-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder)  # the folder itself: a symlink planted under that name is refused, not followed
    except OSError as exc:
        log.warning("no last good copy of the pattern database will be kept: %s", exc)
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        log.warning("no last good copy of the pattern database will be kept: %s is not a folder of this user's "
                    "alone (mode 0700); set PATTERN_DB_LAST_GOOD_PATH", folder)
        return None
    return folder / f"{hashlib.sha256(resolved.encode('utf-8')).hexdigest()[:16]}-{Path(path).name}"


class ReloadingNormalizer:
    def __init__(self, path: Path | str, interval: float = 2.0, last_good: Path | str | None = None):
        self.path = Path(path)
        self.interval = interval
        self.last_good = Path(last_good) if last_good is not None else None
        self._lock = threading.Lock()  # one load at a time; current() never takes it
        self.last_error: str | None = None
        loaded = self._read()
        try:
            self._normalizer = Normalizer(load_database(self.path, loaded))  # the first load must succeed ...
        except PatternDatabaseError as exc:
            if self.last_good is None or not self.last_good.is_file():
                raise
            try:  # ... or the copy of the last database a server process put in force
                self._normalizer = Normalizer(load_database(self.last_good))
            except PatternDatabaseError:
                raise exc from None
            self.last_error = f"{exc} (serving the last good copy, version {self._normalizer.version})"
            log.error("pattern database refused at start; serving the last good copy %s (version %s): %s",
                      self.last_good, self._normalizer.version, exc)
        else:
            self._keep(loaded)
        self._stamp = self._file_stamp()
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
            loaded = self._read()
            fresh = Normalizer(load_database(self.path, loaded))
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
        self._keep(loaded)
        log.info("pattern database %s loaded (%d entries)", fresh.version, len(fresh.db))
        return True

    def _read(self) -> bytes | None:
        """The file's bytes, read once for a load and for `_keep` (None without `last_good`, or when unreadable: the
        load then reads the file itself and reports why it cannot)."""
        if self.last_good is None:
            return None
        try:
            return self.path.read_bytes()
        except OSError:
            return None

    def _keep(self, loaded: bytes | None) -> None:
        """Write the bytes just put in force to `last_good` (whole, then renamed over the old copy). Only when the
        file still holds them after the load: an edit saved during the load (perhaps a broken one) is not what
        was validated, and never replaces a good copy. No second parse."""
        if self.last_good is None or loaded is None or self._read() != loaded:
            return
        tmp = self.last_good.with_name(f".{self.last_good.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(loaded)
            os.replace(tmp, self.last_good)
        except OSError as exc:
            log.warning("the last good copy of the pattern database at %s was not updated: %s", self.last_good, exc)
            tmp.unlink(missing_ok=True)


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

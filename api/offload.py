"""Moderation in child processes (MODERATION_PROCESSES), so that the server's event loop never shares a GIL with it.

Threads were not enough (issue 13): while worst-case texts were moderated on the server process's worker threads,
`/health` took up to 100-200 ms on the loaded 2-core machine although the event loop did none of the work. The loop
waits for the GIL each time it wakes, and a worker thread that the operating system preempts while holding it
(a busy machine does so for tens of milliseconds) holds the loop up too; garbage collections of a batch's objects
stop every thread as well. A child process has its own GIL and heap: the server process keeps the event loop, the
worker threads (which only wait for the child, record and render) and the prediction log.

Each child builds its own Moderator from the settings (pattern database with its own reload thread, classifier) and
runs `moderate_batch` and `normalize`; a job is pickled to it and its results back (matches already capped at
MAX_MATCHES_PER_TEXT). A child that dies (killed, out of memory) fails the jobs it had with ModerationUnavailable
(503) and the pool is started again for the next ones.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from api.lifeline import on_parent_exit

log = logging.getLogger("api")

_moderator: Any = None  # in a child: its own Moderator


def _start(settings: Any) -> None:
    """A child's start: its own moderator; Ctrl-C is for the server, which stops the children itself."""
    global _moderator
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    on_parent_exit(lambda: os._exit(0))  # a server killed outright cannot stop us (api/lifeline.py)
    from moderator import Moderator

    _moderator = Moderator.from_settings(settings)
    gc.collect()
    gc.freeze()  # the vocabulary and the automaton live forever: out of the collector's way


def _ready() -> int:
    return os.getpid()


def _moderate(texts: Sequence[str], request_ids: Sequence[str]) -> list:
    return _moderator.moderate_batch(texts, request_ids)


def _normalize(text: str, max_matches: int) -> dict:
    return _moderator.normalizer.current().normalize(text).as_dict(max_matches)


class ModerationProcesses:
    """`processes` children that moderate; called from the server's worker threads (each call blocks its thread,
    not the event loop, while the child works)."""

    def __init__(self, settings: Any, processes: int):
        self.settings = settings
        self.processes = processes
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn: a fork of a server with running threads (reload, prediction log) could copy a held lock
        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=(self.settings,))  # fmt: skip

    def start(self) -> list[int]:
        """Start every child and wait until each has built its moderator; their process ids."""
        futures = [self._executor.submit(_ready) for _ in range(self.processes)]
        return [f.result() for f in futures]

    def _call(self, fn: Any, *args: Any) -> Any:
        return self.result(*self._submit(fn, *args), (fn, args))

    def _submit(self, fn: Any, *args: Any) -> tuple[Any, ProcessPoolExecutor, BaseException | None]:
        executor = self._executor
        try:
            return executor.submit(fn, *args), executor, None
        except BrokenProcessPool as exc:
            return None, executor, exc

    def submit_moderate(self, texts: Sequence[str], request_ids: Sequence[str]) -> tuple:
        """Start moderating in a child; `result(*handle)` waits for the answer."""
        args = (list(texts), list(request_ids))
        return (*self._submit(_moderate, *args), (_moderate, args))

    def result(self, future: Any, executor: ProcessPoolExecutor, error: BaseException | None = None,
               again: tuple[Any, tuple] | None = None) -> Any:
        """The job's answer. When its child died, the pool starts again and the job (`again`: the function and its
        arguments) is sent once more: a child killed from outside (a SIGTERM to the server's whole process group,
        the OOM killer) costs no request; a job whose child dies twice gets ModerationUnavailable (a 503)."""
        from moderator import ModerationUnavailable

        try:
            if error is not None:
                raise error
            return future.result()
        except BrokenProcessPool as exc:
            with self._lock:  # one restart, however many jobs saw the same dead pool
                if self._executor is executor:
                    log.error("a moderation process died (%s); starting the pool again", exc)
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
            if again is not None:
                fn, args = again
                log.warning("sending a job whose moderation process died to the new one")
                return self.result(*self._submit(fn, *args))
            raise ModerationUnavailable("a moderation process died while handling this request") from exc

    def moderate_batch(self, texts: Sequence[str], request_ids: Sequence[str]) -> list:
        return self._call(_moderate, list(texts), list(request_ids))

    def normalize(self, text: str, max_matches: int) -> dict:
        return self._call(_normalize, text, max_matches)

    def pids(self) -> list[int]:
        return [p.pid for p in getattr(self._executor, "_processes", {}).values()]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

"""A process that outlives its parent by accident: what each of the API's processes does when its parent is gone.

`python main.py --workers N` is a supervisor over N uvicorn worker processes, and each worker may have moderation
children (api/offload.py). A parent that stops normally stops its children. A parent killed outright (SIGKILL, the
out-of-memory killer) cannot: its workers went on serving the port they inherited, with the code and settings of
the run that died, and a moderation child waited for jobs forever, holding a whole moderator's memory. A
supervised server that crashed and restarted leaked one of each per crash.

multiprocessing gives every process it spawns its parent's sentinel, which becomes ready when the parent exits;
`on_parent_exit` waits on it in a daemon thread and then acts: a worker shuts down as on SIGTERM (in-flight
requests answered, the prediction log drained), a moderation child exits at once.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import threading
from collections.abc import Callable


def on_parent_exit(action: Callable[[], None]) -> bool:
    """Run `action` (on a daemon thread) once this process's multiprocessing parent has exited. False, and nothing
    is watched, in a process that multiprocessing did not start (a server run directly, a test)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return False

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        action()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return True

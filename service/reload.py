"""The index watcher: notices a newly published build and loads it off the request path."""

from __future__ import annotations

import logging
import threading

from service.state import ServiceState

log = logging.getLogger("notesqa")


class IndexWatcher:
    """Checks every `reload_poll_seconds` (one readlink of `current`; polling, because
    file events do not cross the network volumes an index is often published on) and lets
    `ServiceState.reload` build, warm and swap in what it finds."""

    def __init__(self, state: ServiceState):
        self.state = state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.state.settings.reload_poll_seconds):
            try:
                self.state.reload()
            except Exception:  # never let the watcher die: the next tick tries again
                log.exception("检查新索引时出错")

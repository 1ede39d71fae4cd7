"""The console's Flask app on a real waitress server in a thread, stopped as cleanly as a process exit stops it.

Closing the server's sockets from the test's thread (`server.close()`) left a request thread still finishing a
response to wake the loop through a pipe already closed: waitress's thread died with `OSError: Bad file
descriptor`, which pytest reports as an unhandled thread exception. Here the request threads finish first, then
the loop thread itself closes every socket, so its loop ends and the thread returns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server


@contextmanager
def waitress_thread(app: Any, threads: int = 4) -> Iterator[BaseWSGIServer]:
    """`app` served on a free loopback port (`server.effective_port`) until the block ends."""
    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    assert isinstance(server, BaseWSGIServer)
    loop = threading.Thread(target=server.run, name="waitress loop", daemon=True)
    loop.start()
    try:
        yield server
    finally:
        # Each request thread finishes the request it is on (and wakes the loop to send it) before it exits.
        server.task_dispatcher.shutdown()
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        loop.join(10)
        assert not loop.is_alive(), "waitress's loop did not end"

"""An S3 outage for the tests: a private moto server (ThreadedMotoServer on 127.0.0.1) that a
test stops and starts again on the same port, so the app's storage endpoint goes down and
comes back. moto keeps its buckets and objects in the process, so they survive the restart.

Tests get it as the `outage` fixture (tests/conftest.py); marked `s3_outage`, their `s3`
fixture's bucket is on it:

    pytestmark = pytest.mark.s3_outage

    def test_downloads_pause_while_s3_is_down(client, s3, outage):
        outage.stop()
        ...
"""

import time

from moto.server import ThreadedMotoServer


class StoppableS3:
    """A moto S3 server on 127.0.0.1: `stop()` takes it down (connections are refused),
    `start()` brings it back on the same port; stopped when the `with` block ends."""

    def __init__(self):
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{self.port}"
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def start(self) -> None:
        if not self.running:
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
            self.running = True

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def wait_for(predicate, timeout: float = 15.0, what: str = "the condition") -> None:
    """Wait until `predicate()` is true (a background thread's work), failing loudly after
    `timeout` seconds. Not a timed test: the bound only keeps a broken build from hanging."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)

"""A one-process WSGI server for measuring an upload's memory from the outside.

Run as `python tests/downloads/api/memory_server.py`: prints its port, then serves one request per line
read on stdin and prints "<RSS before> <peak RSS during>" in KiB for it: Linux's peak (VmHWM)
is reset before each request (`/proc/self/clear_refs`), so imports and earlier requests do
not hide the request's own peak. Configured by the environment like any deployment.
"""

import os
import sys
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "downloads_project.settings")

from django.core.wsgi import get_wsgi_application


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main() -> None:
    application = get_wsgi_application()
    server = make_server("127.0.0.1", 0, application, handler_class=QuietHandler)
    print(server.server_port, flush=True)
    for _line in sys.stdin:
        _reset_peak()
        before = _status_kib("VmRSS")
        server.handle_request()
        print(before, _status_kib("VmHWM"), flush=True)


if __name__ == "__main__":
    main()

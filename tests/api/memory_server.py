"""A one-process WSGI server for measuring an upload's memory from the outside.

Run as `python tests/api/memory_server.py`: prints its port, then serves one request per line
read on stdin and prints the process's peak RSS (KiB) after each, so a test can compare the
peak before and after a request. Configured by the environment like any deployment.
"""

import os
import resource
import sys
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "downloads_project.settings")

from django.core.wsgi import get_wsgi_application


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main() -> None:
    application = get_wsgi_application()
    server = make_server("127.0.0.1", 0, application, handler_class=QuietHandler)
    print(server.server_port, flush=True)
    for _line in sys.stdin:
        server.handle_request()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)


if __name__ == "__main__":
    main()

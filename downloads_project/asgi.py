"""ASGI entry point. The sync views are faster under gunicorn's sync workers (see FACTS)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "downloads_project.settings")

application = get_asgi_application()

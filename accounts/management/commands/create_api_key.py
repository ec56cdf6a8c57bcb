from django.core.management.base import BaseCommand

from accounts.models import ApiKey
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create a merchant API key and print the raw key (shown once, never stored)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--scope", choices=ApiKey.Scope.values, default=ApiKey.Scope.WRITE)

    def handle(self, *args, name, scope, **options):
        key, raw = api_key_create(name=name, scope=scope)
        self.stderr.write(
            f"Created {scope} key {key.name!r} ({key.prefix}). It is shown only once:"
        )
        self.stdout.write(raw)

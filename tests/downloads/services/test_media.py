"""Media (services.media): stored files."""

import pytest

from downloads.errors import ServiceError
from downloads.services.media import media_delete
from tests import factories

pytestmark = pytest.mark.django_db


class TestDeletion:
    def test_media_used_by_a_download_cannot_be_deleted(self):
        download = factories.DownloadFactory()
        with pytest.raises(ServiceError):
            media_delete(media=download.media)

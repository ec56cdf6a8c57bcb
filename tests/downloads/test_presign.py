"""downloads/presign.py: the URLs it signs are botocore's, byte for byte."""

import datetime
from unittest import mock

import boto3
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from downloads import presign
from downloads.presign import UrlSigner

FIXED = datetime.datetime(2026, 12, 1, 18, 0, 0)
BUCKET = "store-files"


def client(*, endpoint=None, style="path", token=None, region="eu-west-1"):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


@pytest.fixture
def frozen_clock():
    """The same signing time for botocore and for the signer."""
    with (
        mock.patch("botocore.auth.get_current_datetime", lambda: FIXED),
        mock.patch.object(presign, "get_current_datetime", lambda: FIXED),
    ):
        yield


def botocore_url(s3, key, *, expires, disposition, content_type, byte_range, method):
    params = {"Bucket": BUCKET, "Key": key, "ResponseContentDisposition": disposition}
    if content_type is not None:
        params["ResponseContentType"] = content_type
    if byte_range is not None:
        params["Range"] = byte_range
    return s3.generate_presigned_url(
        "get_object", Params=params, ExpiresIn=expires, HttpMethod=method
    )


CLIENTS = {
    "path style, local endpoint": dict(endpoint="http://127.0.0.1:9000"),
    "virtual hosts on AWS, temporary credentials": dict(style="virtual", token="FQoG/+=token"),
    "AWS's default endpoint, us-east-1": dict(style="auto", region="us-east-1"),
    "https endpoint with a port": dict(endpoint="https://s3.example.com:8443"),
}


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("shape", CLIENTS.values(), ids=CLIENTS.keys())
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("byte_range", [None, "bytes=100-", "bytes=0-99"])
@pytest.mark.parametrize("content_type", [None, "application/pdf", "text/plain; charset=utf-8"])
def test_a_signed_url_is_the_one_botocore_presigns(shape, method, byte_range, content_type):
    s3 = client(**shape)
    signer = UrlSigner.for_client(s3, BUCKET)
    key = "media/5f1c/Guide (2) für Sie + more & less = 100%~.pdf"
    disposition = "attachment; filename=\"Guide (2).pdf\"; filename*=UTF-8''Guide%20%282%29.pdf"
    arguments = dict(
        expires=60,
        disposition=disposition,
        content_type=content_type,
        byte_range=byte_range,
        method=method,
    )
    assert signer.url(key, **arguments) == botocore_url(s3, key, **arguments)


@pytest.mark.usefixtures("frozen_clock")
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=60,
    ),
    filename=st.text(min_size=1, max_size=30).filter(lambda name: "\x00" not in name),
    expires=st.integers(min_value=1, max_value=3600),
)
def test_any_key_and_name_sign_as_botocore_signs_them(key, filename, expires):
    s3 = client(endpoint="http://127.0.0.1:9000")
    signer = UrlSigner.for_client(s3, BUCKET)
    arguments = dict(
        expires=expires,
        disposition=f"attachment; filename={filename}",
        content_type=None,
        byte_range=None,
        method="GET",
    )
    assert signer.url(key, **arguments) == botocore_url(s3, key, **arguments)


def test_the_kept_signing_key_follows_the_day_the_secret_and_the_region():
    # The signing key is kept per secret, day and scope (presign._signing_key): each URL
    # below is signed after another with a different one of the three, and must still be
    # botocore's own.
    arguments = dict(
        expires=60, disposition="attachment", content_type=None, byte_range=None, method="GET"
    )
    days = [FIXED, FIXED + datetime.timedelta(days=1), FIXED + datetime.timedelta(days=1)]
    clients = [
        client(endpoint="http://127.0.0.1:9000"),
        client(endpoint="http://127.0.0.1:9000"),
        boto3.client(
            "s3",
            endpoint_url="http://127.0.0.1:9000",
            region_name="eu-west-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="rotated-secret",
            aws_session_token="new-token",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        ),
        client(endpoint="http://127.0.0.1:9000", region="us-west-2"),
    ]
    for moment, s3 in zip([*days, days[-1]], clients, strict=True):
        with (
            mock.patch("botocore.auth.get_current_datetime", lambda moment=moment: moment),
            mock.patch.object(presign, "get_current_datetime", lambda moment=moment: moment),
        ):
            signer = UrlSigner.for_client(s3, BUCKET)
            assert signer.url("media/a/x.pdf", **arguments) == botocore_url(
                s3, "media/a/x.pdf", **arguments
            )


def test_the_signer_learns_endpoint_and_scope_from_one_botocore_url():
    signer = UrlSigner.for_client(client(style="virtual"), BUCKET)
    assert signer.base == f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/"
    assert (signer.region, signer.service, signer.path_prefix) == ("eu-west-1", "s3", "/")


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("byte_range", [None, "bytes=5-"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_download_url_is_the_one_django_storages_would_make(s3, byte_range, method):
    from django.core.files.storage import default_storage

    from downloads import storage

    key = "media/2b9e/Field Guide (2) für Sie.pdf"
    parameters = {
        "ResponseContentDisposition": storage.content_disposition("Field Guide (2).pdf"),
        "ResponseContentType": "application/pdf",
    }
    if byte_range:
        parameters["Range"] = byte_range
    expected = default_storage.url(key, parameters=parameters, expire=60, http_method=method)
    assert (
        storage.presigned_download_url(
            key=key,
            filename="Field Guide (2).pdf",
            content_type="application/pdf",
            byte_range=byte_range,
            http_method=method,
        )
        == expected
    )


def test_the_signer_follows_a_change_of_storage(s3, settings):
    from downloads import storage

    first = storage.presigned_download_url(key="media/a/x.pdf", filename="x.pdf")
    assert f"/{s3.bucket}/media/a/x.pdf?" in first
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "bucket_name": "other"},
        },
    }
    assert "/other/media/a/x.pdf?" in storage.presigned_download_url(
        key="media/a/x.pdf", filename="x.pdf"
    )
    # A storage with a location prefix signs the prefixed object key (the cached key is
    # the storage instance's own).
    options = settings.STORAGES["default"]["OPTIONS"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**settings.STORAGES["default"], "OPTIONS": {**options, "location": "shop"}},
    }
    assert "/other/shop/media/a/x.pdf?" in storage.presigned_download_url(
        key="media/a/x.pdf", filename="x.pdf"
    )

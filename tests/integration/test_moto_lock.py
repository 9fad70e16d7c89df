"""What AWS enforces on Object Lock buckets and SeaweedFS does not, against moto's
server: a write must name its checksum (Content-MD5 or x-amz-sdk-checksum-algorithm).
moto verifies no checksums, so the checksums themselves are SeaweedFS's tests."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from msgarchive_server.stores import Retention
from msgarchive_server.stores.s3 import S3Options, S3Store

pytestmark = pytest.mark.integration


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)  # its default is 0.0.0.0
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_archive_writes_satisfy_aws_on_a_locked_bucket(moto_endpoint: str) -> None:
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    config = botocore.config.Config(
        s3={"addressing_style": "path"}, request_checksum_calculation="when_required"
    )
    s3 = session.client("s3", endpoint_url=moto_endpoint, config=config)
    s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="locked",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    with pytest.raises(ClientError) as refused:  # what AWS does to a write without one
        s3.put_object(Bucket="locked", Key="unchecked", Body=b"no checksum")
    assert refused.value.response["Error"]["Code"] == "MissingUploadObjectWithObjectLockHeaders"

    options = S3Options(
        bucket="locked",
        endpoint_url=moto_endpoint,
        path_style=True,
        retention=Retention("COMPLIANCE", 1),
    )
    store = S3Store(options, session=session)
    store.probe()  # it writes too
    written = store.put("sent_messages/Sms/202409/c/h/id.json.lz4", b"a copy")
    head = s3.head_object(Bucket="locked", Key="sent_messages/Sms/202409/c/h/id.json.lz4")
    assert (head["ObjectLockMode"], head["VersionId"]) == ("COMPLIANCE", written.version_id)

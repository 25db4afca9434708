"""Shared helpers of the runner tests (tests/test_runner*.py): train overrides and a local S3 server."""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

from helpers import wait_until

REPO = Path(__file__).resolve().parents[1]
TRAIN_OVERRIDES = {
    "epochs": 2, "image_size": 32, "batch_size": 4, "workers": 0, "seed": 0,
    "train.progress_bar": False, "dataset.input_map": {"SolderLight": 0, "WhiteLight": 1},
}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's standalone S3/IAM server on a free localhost port (real HTTP); yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, "the moto server exited"
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=5)
            return True
        except OSError:
            return False

    try:
        wait_until(answers, "the moto S3 server to answer", interval=0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def admin_client(url: str, service: str):
    import boto3

    return boto3.client(service, endpoint_url=url, aws_access_key_id="setup", aws_secret_access_key="setup",
                        region_name="us-east-1")


def s3_user(url: str, name: str) -> dict[str, str]:
    """An IAM user allowed s3:*; returns its AccessKeyId and SecretAccessKey."""
    iam = admin_client(url, "iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    return iam.create_access_key(UserName=name)["AccessKey"]


def enforce_auth(url: str) -> None:
    """From now on the server checks credentials (IAM)."""
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset-auth", data=b"0", method="POST",
                                                  headers={"Content-Type": "text/plain"}))

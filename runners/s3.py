"""S3 data sources: list a split prefix and download its objects into the content-addressed cache.

Credentials come from boto3's usual chain (environment, profile, instance role), or from the location itself
(``s3://ACCESS_KEY_ID:SECRET_ACCESS_KEY@bucket/prefix``, percent-encoded; used for that location only); the
endpoint from ``AWS_ENDPOINT_URL`` when set. No credential value is ever written or printed by the runner: the
location is recorded without them, and they join the redaction registry (:mod:`optical_inspection.redaction`).
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .cache import ContentCache
from .errors import DataSourceError

_NO_CREDENTIALS = ("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
                   "~/.aws/credentials or use an instance role")


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    etag: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix without trailing slash) of ``s3://bucket/prefix``."""
    rest = uri[len("s3://"):] if uri.startswith("s3://") else ""
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise DataSourceError(f"'{uri}' is not an S3 URI; expected s3://BUCKET/PREFIX")
    return bucket, prefix.strip("/")


def split_credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """(the URI without credentials, (access key id, secret) or None) of ``s3://[ID:SECRET@]bucket/prefix``; the
    credentials are registered for redaction before anything can echo them."""
    from urllib.parse import unquote

    from optical_inspection.redaction import register

    rest = uri[len("s3://"):] if uri.startswith("s3://") else uri
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc:
        return uri, None
    userinfo, _, bucket = netloc.rpartition("@")
    key_id, sep, secret = (unquote(part) for part in userinfo.partition(":"))
    register(userinfo, key_id, secret)
    clean = f"s3://{bucket}{slash}{path}"
    if not (sep and key_id and secret):
        raise DataSourceError(f"{clean}: credentials in an S3 location must be ACCESS_KEY_ID:SECRET_ACCESS_KEY@ "
                              "(percent-encoded); or drop them and use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    return clean, (key_id, secret)


def make_client(credentials: tuple[str, str] | None = None) -> Any:
    """A boto3 S3 client with standard retries (endpoint from AWS_ENDPOINT_URL when set); ``credentials``
    (access key id, secret) instead of the usual chain when given."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise DataSourceError("S3 sources need boto3: pip install 'optical-inspection[s3]'") from None
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120)
    keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]} if credentials else {}
    session = boto3.session.Session(**keys)  # a new session reads the credential chain now (the default one caches)
    return session.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None, config=config)


def list_split(client: Any, uri: str) -> dict[str, S3Object | None]:
    """What lies directly under the split prefix: objects by file name, sub-folders as ``name/`` → None."""
    bucket, prefix = parse_uri(uri)
    folder = f"{prefix}/" if prefix else ""
    found: dict[str, S3Object | None] = {}
    for page in _pages(client, uri, Bucket=bucket, Prefix=folder, Delimiter="/"):
        for item in page.get("Contents", []):
            name = item["Key"][len(folder):]
            found[name] = S3Object(bucket, item["Key"], item.get("ETag", "").strip('"'), int(item.get("Size", 0)))
        for sub in page.get("CommonPrefixes", []):
            found[sub["Prefix"][len(folder):]] = None
    return found


def list_tree(client: Any, uri: str) -> dict[str, S3Object]:
    """Every object under the prefix, by its path relative to the prefix; an unsafe path is an error."""
    bucket, prefix = parse_uri(uri)
    folder = f"{prefix}/" if prefix else ""
    found: dict[str, S3Object] = {}
    for page in _pages(client, uri, Bucket=bucket, Prefix=folder):
        for item in page.get("Contents", []):
            relative = item["Key"][len(folder):]
            if (relative == "" or relative.endswith("/")) and int(item.get("Size", 0)) == 0:
                continue  # a "folder marker" object some tools create
            found[_safe_relative(relative, uri)] = S3Object(bucket, item["Key"], item.get("ETag", "").strip('"'),
                                                            int(item.get("Size", 0)))
    return found


def mirror(client: Any, uri: str, cache: ContentCache, max_bytes: int, threads: int = 16) -> Path:
    """A local copy of every object under ``uri`` (downloaded in parallel once per listing of keys, ETags and
    sizes; the folder appears complete or not at all)."""
    objects = list_tree(client, uri)
    if not objects:
        raise DataSourceError(f"{uri}/: no objects under this prefix")
    total = sum(o.size for o in objects.values())
    if total > max_bytes:
        raise DataSourceError(f"{uri}/: {total / 2**20:.1f} MiB of images, over the {max_bytes / 2**20:.1f} MiB "
                              "cap; pack them as images.tar.gz or raise the cap")
    listing = sorted((name, o.etag, o.size) for name, o in objects.items())

    def fill(folder: Path) -> None:
        def fetch(name: str) -> None:
            obj = objects[name]
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _call(lambda: client.download_file(obj.bucket, obj.key, str(target)), obj.uri)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(fetch, objects))  # list(): re-raise the first failure

    return cache.mirrored(json.dumps([uri, listing]), fill)


def _pages(client: Any, uri: str, **request: Any) -> Iterator[dict]:
    token = None
    while True:
        kwargs = {**request, **({"ContinuationToken": token} if token else {})}
        page = _call(lambda: client.list_objects_v2(**kwargs), uri)  # noqa: B023 - called at once
        yield page
        token = page.get("NextContinuationToken")
        if not token:
            return


def _safe_relative(name: str, uri: str) -> str:
    """``name`` when it is a plain relative path (no empty, '.' or '..' parts, no backslash)."""
    parts = name.split("/")
    if not name or "\\" in name or any(part in ("", ".", "..") for part in parts):
        raise DataSourceError(f"{uri}/{name}: refusing to download an object whose key is not a plain relative "
                              "path ('..', '.', '//' or '\\' in it); rename or remove it")
    return name


def download(client: Any, obj: S3Object, cache: ContentCache) -> Path:
    """The cached copy of ``obj`` (downloaded once per ETag and size; stored by its SHA-256)."""
    index_key = json.dumps([obj.bucket, obj.key, obj.etag, obj.size])
    cached = cache.lookup(index_key)
    if cached is not None:
        return cached
    name = obj.key.rsplit("/", 1)[-1]
    with cache.incoming(name) as tmp:
        _call(lambda: client.download_file(obj.bucket, obj.key, str(tmp)), obj.uri)
        return cache.store(tmp, name, index_key)


def _call(fn: Any, uri: str) -> Any:
    """Run one S3 call, turning botocore errors into clear DataSourceErrors (no credential values)."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    bucket, prefix = parse_uri(uri)
    try:
        return fn()
    except NoCredentialsError:
        raise DataSourceError(f"{uri}: {_NO_CREDENTIALS}") from None
    except EndpointConnectionError as exc:
        raise DataSourceError(f"{uri}: cannot reach the S3 endpoint ({exc.kwargs.get('endpoint_url')}); "
                              "check AWS_ENDPOINT_URL and the network") from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        raise DataSourceError(f"{uri}: {_explain(code, bucket, prefix)}") from None
    except BotoCoreError as exc:
        raise DataSourceError(f"{uri}: S3 request failed: {type(exc).__name__}") from None


def _explain(code: str, bucket: str, key: str) -> str:
    if code == "NoSuchBucket":
        return f"bucket '{bucket}' does not exist (check the bucket name and the endpoint)"
    if code in ("NoSuchKey", "404", "NotFound"):
        return f"object '{key}' does not exist in bucket '{bucket}'"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidClientTokenId"):
        return (f"the AWS credentials were rejected ({code}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                "or the profile in use")
    if code in ("AccessDenied", "403", "Forbidden"):
        return (f"access denied to bucket '{bucket}'; the credentials need s3:ListBucket and s3:GetObject "
                "on this prefix")
    return f"S3 error {code or 'unknown'}"

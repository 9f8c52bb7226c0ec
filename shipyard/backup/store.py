"""Where backups are kept: a directory, or a prefix in an S3 bucket (with the DVC remote's
options: endpointurl, access keys). Each backup is `<project>-<id>.tar` and a copy of its
manifest beside it (`<project>-<id>.json`), so listing reads no archive."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.retry import retrying


class BackupStore(Protocol):
    url: str

    def names(self) -> list[str]:
        """File names in the location."""
        ...

    def put(self, source: Path, name: str) -> None: ...

    def get(self, name: str, target: Path) -> None: ...

    def read_text(self, name: str) -> str: ...

    def delete(self, name: str) -> None: ...


class LocalStore:
    """A directory (created on first write)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = str(folder)

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.is_file())

    def put(self, source: Path, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{name}.partial"
        shutil.copyfile(source, partial)
        partial.replace(self.folder / name)  # a reader never sees half an archive

    def get(self, name: str, target: Path) -> None:
        shutil.copyfile(self._existing(name), target)

    def read_text(self, name: str) -> str:
        return self._existing(name).read_text(encoding="utf-8")

    def delete(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    def _existing(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise ShipyardError(
                f"no file '{name}' in {self.folder}",
                hint="`shipyard backup list` shows the backups",
            )
        return path


class S3Store:
    """A prefix of an S3 bucket (or an S3-compatible store through `endpointurl`)."""

    def __init__(self, url: str, options: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.url = url.rstrip("/")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.options = options

    def _client(self) -> Any:
        import boto3

        o = self.options
        return boto3.client(
            "s3",
            endpoint_url=o.get("endpointurl") or o.get("endpoint_url"),
            aws_access_key_id=o.get("access_key_id"),
            aws_secret_access_key=o.get("secret_access_key"),
            aws_session_token=o.get("session_token"),
            region_name=o.get("region"),
        )

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, what: str, call: Any) -> Any:
        try:
            return retrying(call, what=f"{what} {self.url}", retry_on=(Exception,))
        except Exception as exc:  # botocore raises its own types
            raise ServiceUnavailable(
                f"could not {what} the backup location {self.url}: {exc}",
                hint="check the bucket, its endpoint and the credentials in the profile "
                "(backup.to, or the DVC remote's options)",
            ) from exc

    def names(self) -> list[str]:
        def list_names() -> list[str]:
            found: list[str] = []
            pages = self._client().get_paginator("list_objects_v2")
            start = self._key("")
            for page in pages.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    name = item["Key"][len(start) :]
                    if name and "/" not in name:
                        found.append(name)
            return sorted(found)

        result: list[str] = self._call("list", list_names)
        return result

    def put(self, source: Path, name: str) -> None:
        self._call(
            "upload to",
            lambda: self._client().upload_file(str(source), self.bucket, self._key(name)),
        )

    def get(self, name: str, target: Path) -> None:
        self._call(
            "download from",
            lambda: self._client().download_file(self.bucket, self._key(name), str(target)),
        )

    def read_text(self, name: str) -> str:
        def read() -> str:
            body = self._client().get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
            return str(body.read().decode("utf-8"))

        text: str = self._call("read from", read)
        return text

    def delete(self, name: str) -> None:
        self._call(
            "delete from",
            lambda: self._client().delete_object(Bucket=self.bucket, Key=self._key(name)),
        )

    def exists(self, key: str) -> bool:
        """Whether an object of the bucket (a full key, not a backup name) exists."""
        from botocore.exceptions import ClientError

        def head() -> bool:
            try:
                self._client().head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True

        found: bool = self._call("read from", head)
        return found


def open_store(url: str, options: dict[str, str] | None = None) -> BackupStore:
    """The store of a location: s3://bucket/prefix, file:///dir or a directory path."""
    if url.startswith("s3://"):
        return S3Store(url, options or {})
    if "://" in url and not url.startswith("file://"):
        scheme = url.split("://", 1)[0]
        raise ShipyardError(
            f"backups cannot be kept at '{url}': the {scheme}:// scheme is not supported",
            hint="give a directory or an s3:// URL (--to, or backup.to in the profile)",
        )
    return LocalStore(Path(url.removeprefix("file://")).expanduser().resolve())

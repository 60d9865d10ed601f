"""Where datasets live: a local folder, or any filesystem URI that pyarrow knows (s3://, gs://,
hdfs://, abfs://) or fsspec does (memory://, any registered protocol; pyarrow reads through it).

S3 takes the standard AWS settings from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION): pyarrow's S3 client reads them itself. A Store holds a root and
does the few things the reader, the part writers and the commit need; locally it keeps what only a
local disk gives (rename for atomic writes, hard links), on a store the equivalents (a PUT is atomic,
a server-side copy).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import shutil
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.fs as pafs

READ_BUFFER = 1 << 20  # bytes per read of a remote video: each read of a remote file is one ranged GET


class StorageError(ValueError):
    """A root that cannot be reached or used; the message names the URI, the setting and the fix."""


def is_uri(root) -> bool:
    return "://" in str(root) and not str(root).startswith("file://")


# The settings a filesystem is made from: one made with old ones is not reused after they change.
SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")


def _filesystem(location: str) -> pafs.FileSystem:
    """The filesystem of "scheme://netloc", made once per process and settings (S3's resolves credentials)."""
    return _made_filesystem(location, tuple(os.environ.get(k) for k in SETTINGS))


@functools.lru_cache(maxsize=16)
def _made_filesystem(location: str, settings: tuple) -> pafs.FileSystem:
    try:
        return pafs.FileSystem.from_uri(location)[0]
    except ValueError as e:
        if "nrecognized filesystem" not in str(e):
            raise StorageError(f"{location}: {e}") from None
    try:  # a protocol only fsspec knows: pyarrow reads and writes through it
        import fsspec

        return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(location.partition("://")[0])))
    except (ImportError, ValueError) as e:
        raise StorageError(f"{location}: neither pyarrow nor fsspec knows this filesystem ({e})") from None


class Store:
    """A dataset root: `rel` paths below it are POSIX-style ("meta/info.json")."""

    def __init__(self, root: str | Path):
        self.url = str(root).rstrip("/") or "/"
        self.local = not is_uri(self.url)
        if self.local:
            self.path = Path(self.url.removeprefix("file://")).resolve()
            self.fs, self.base = pafs.LocalFileSystem(), self.path.as_posix()
        else:
            self.path = None
            scheme, _, rest = self.url.partition("://")
            netloc, _, inner = rest.partition("/")
            self.fs = _filesystem(f"{scheme}://{netloc}")
            if isinstance(self.fs, pafs.PyFileSystem):
                self.base = self.fs.handler.fs._strip_protocol(self.url)
            elif isinstance(self.fs, pafs.HadoopFileSystem):
                self.base = f"/{inner}"
            else:  # s3, gs, abfs: the bucket is the first part of the path
                self.base = f"{netloc}/{inner}".rstrip("/")

    def __str__(self) -> str:
        return str(self.path) if self.local else self.url

    @property
    def root(self) -> Path | str:
        """What names the root to a user: the local folder's Path, or the URI."""
        return self.path if self.local else self.url

    def full(self, rel: str = "") -> str:
        """The path of `rel` in self.fs."""
        return f"{self.base}/{rel}" if rel else self.base

    def uri(self, rel: str = "") -> str:
        """What names `rel` to a user or another process: a local path, or the store's URI."""
        return str(self.path / rel) if self.local else (f"{self.url}/{rel}" if rel else self.url)

    # -- checks ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Fail now, before any work, on an unreachable endpoint, refused credentials or a missing
        bucket (locally there is nothing to check before the first read)."""
        if self.local or isinstance(self.fs, (pafs.PyFileSystem, pafs.HadoopFileSystem)):
            return  # no buckets: the first read says what is wrong
        bucket = self.base.split("/", 1)[0]
        try:
            info = self.fs.get_file_info(bucket)
        except OSError as e:
            raise StorageError(storage_message(self.url, e)) from None
        if info.type == pafs.FileType.NotFound:
            raise StorageError(f"{self.url}: bucket {bucket!r} does not exist"
                               f"{' at ' + os.environ['AWS_ENDPOINT_URL'] if os.environ.get('AWS_ENDPOINT_URL') else ''}; "
                               "create it first or fix the URI")

    # -- reading --------------------------------------------------------------------------------
    def info(self, rel: str) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(self.full(rel))
        except OSError as e:
            raise StorageError(storage_message(self.uri(rel), e)) from None

    def is_file(self, rel: str) -> bool:
        return self.info(rel).type == pafs.FileType.File

    def exists(self, rel: str = "") -> bool:
        return self.info(rel).type != pafs.FileType.NotFound

    def is_dir(self, rel: str = "") -> bool:
        info = self.info(rel)
        if info.type == pafs.FileType.Directory:
            return True
        return not self.local and info.type == pafs.FileType.NotFound and bool(self.files(rel))

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.full(rel)) as f:
            return f.read()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode()

    def read_many(self, rels: list[str]) -> list[bytes]:
        """Several small files at once: one request each, in parallel on a store (a commit reads one
        manifest per part)."""
        if self.local or len(rels) < 2:
            return [self.read_bytes(r) for r in rels]
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(self.read_bytes, rels))

    def files(self, rel: str = "") -> dict[str, int]:
        """Every file under `rel` (recursively): relative path -> size; {} when there is none."""
        selector = pafs.FileSelector(self.full(rel), recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as e:
            raise StorageError(storage_message(self.uri(rel), e)) from None
        cut = len(self.base.rstrip("/")) + 1
        return {i.path[cut:]: i.size for i in infos if i.type == pafs.FileType.File}

    def glob(self, pattern: str) -> list[str]:
        """Files whose relative path matches `pattern` (fnmatch, `*` within one path part), sorted;
        one recursive listing under the pattern's fixed prefix."""
        parts = pattern.split("/")
        fixed = []
        for p in parts:
            if any(c in p for c in "*?["):
                break
            fixed.append(p)
        depth = len(parts)
        return sorted(r for r in self.files("/".join(fixed)) if r.count("/") + 1 == depth
                      and all(fnmatch.fnmatchcase(a, b) for a, b in zip(r.split("/"), parts)))

    def read_table(self, rel: str, columns: list[str] | None = None):
        import pyarrow.parquet as pq

        return pq.read_table(self.full(rel), columns=columns, filesystem=self.fs)

    def read_schema(self, rel: str):
        import pyarrow.parquet as pq

        return pq.read_schema(self.full(rel), filesystem=self.fs)

    def write_table(self, rel: str, table) -> None:
        import pyarrow.parquet as pq

        if self.local:
            (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, self.path / rel)
        else:
            with self.fs.open_output_stream(self.full(rel)) as f:
                pq.write_table(table, f)

    def input_file(self, rel: str):
        """A seekable file to read (pyarrow, PyAV): locally the path itself."""
        return str(self.path / rel) if self.local else self.fs.open_input_file(self.full(rel))

    # -- writing --------------------------------------------------------------------------------
    def makedirs(self, rel: str = "") -> None:
        if self.local:
            (self.path / rel).mkdir(parents=True, exist_ok=True)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomic: a reader sees the old content or the new, never half (locally a rename; on a store
        a single PUT is atomic)."""
        if self.local:
            path = self.path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return
        with self.fs.open_output_stream(self.full(rel)) as f:
            f.write(data)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode())

    def upload(self, local: Path, rel: str) -> None:
        """Move a finished local file to `rel` (locally a rename when it is on the same disk)."""
        if self.local:
            (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(local), self.path / rel)
        else:
            pafs.copy_files(str(local), self.full(rel), source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)

    def copy(self, src: str, dest: str) -> None:
        """Locally a hard link (no bytes written; a copy across disks); on a store a server-side copy."""
        if self.local:
            target = self.path / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            try:
                os.link(self.path / src, target)
            except OSError:
                shutil.copy2(self.path / src, target)
        else:
            self.fs.copy_file(self.full(src), self.full(dest))

    def copy_many(self, pairs: list[tuple[str, str]]) -> None:
        if self.local or len(pairs) < 2:
            for src, dest in pairs:
                self.copy(src, dest)
            return
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda p: self.copy(*p), pairs))

    def delete(self, rels: list[str]) -> None:
        def one(rel):
            try:
                self.fs.delete_file(self.full(rel))
            except FileNotFoundError:
                pass

        if self.local or len(rels) < 2:
            for rel in rels:
                one(rel)
        else:
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, rels))

    def delete_dir(self, rel: str) -> None:
        if self.local:
            shutil.rmtree(self.path / rel, ignore_errors=True)
        else:
            self.delete(list(self.files(rel)))

    def remove_empty_dirs(self, rel: str) -> None:
        """Locally, folders under `rel` left empty, deepest first, then `rel` itself; a store has none."""
        if not self.local or not (self.path / rel).is_dir():
            return
        top = self.path / rel
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
        if not any(top.iterdir()):
            top.rmdir()


def storage_message(where: str, error: OSError) -> str:
    """One line for a store's error: what failed, and which setting to look at."""
    text = str(error)
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    if "NETWORK_CONNECTION" in text or "Could not connect" in text or "resolve host" in text:
        return (f"{where}: cannot reach the object store at {endpoint or 'the default AWS endpoint'} "
                "(set AWS_ENDPOINT_URL to the S3 endpoint, e.g. http://127.0.0.1:8333)")
    if "ACCESS_DENIED" in text or "AccessDenied" in text or "SignatureDoesNotMatch" in text \
            or "InvalidAccessKeyId" in text or "403" in text:
        return (f"{where}: access denied by the object store{' at ' + endpoint if endpoint else ''} "
                "(check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and the bucket's permissions)")
    if "NO_SUCH_BUCKET" in text:
        return f"{where}: the bucket does not exist; create it first or fix the URI"
    return f"{where}: {text.splitlines()[0] if text else type(error).__name__}"


def as_store(root: str | Path | Store) -> Store:
    return root if isinstance(root, Store) else Store(root)


def open_input(path: str | Path):
    """What av.open takes for a local path (the path) or a URI (a seekable file of the store)."""
    if not is_uri(path):
        return str(path)
    store = Store(str(path))
    return store.fs.open_input_file(store.base)


def _conditional_client(store: Store):
    """s3fs's client for a store on S3, whose PUT takes If-None-Match / If-Match (AWS S3 since 2024,
    SeaweedFS, MinIO): what makes the lease atomic. None elsewhere, or without s3fs (pyarrow's S3 client,
    which moves the data, has no conditional PUT)."""
    if store.local or store.url.partition("://")[0] not in ("s3", "s3a"):
        return None
    try:
        import s3fs
    except ImportError:
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return s3fs.S3FileSystem(endpoint_url=endpoint or None,
                             client_kwargs={"region_name": region} if region else {})


def _precondition_failed(error: OSError) -> bool:
    """A conditional PUT refused because the object is not what we said (412), or because another
    conditional write to it was in flight (409 on AWS)."""
    reply = getattr(error.__cause__, "response", None) or {}
    return (reply.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict")
            or reply.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412))


class Lease:
    """An object-store lock: a lease object written with this job's id and renewed by a thread.

    On S3 (with s3fs installed) every write of the lease is a conditional PUT: the first with
    If-None-Match (only if there is none), a takeover of an expired lease with If-Match on the version
    that was read, each renewal with If-Match on our own last version. Two jobs then never both hold
    the sink: of two racing writers the store lets exactly one through. A holder that stalls past TTL
    without renewing loses it: its next renewal is refused, `held` turns False and the commit refuses.
    Elsewhere (other stores, or S3 without s3fs) there is no conditional PUT, so: refuse while another
    job's fresh lease is there; write ours; wait SETTLE seconds; read it back and go on only if it is
    still ours. That holds unless a job stalls more than SETTLE seconds between reading the lease and
    writing its own. A job killed -9 leaves its lease, which expires after TTL.
    """

    TTL = 60.0
    SETTLE = 1.0

    def __init__(self, store: Store, rel: str):
        self.store, self.rel = store, rel
        self.job = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self.etag: str | None = None  # our last version of the lease object, on S3
        self._s3 = _conditional_client(store)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> dict | None:
        try:
            data = json.loads(self.store.read_text(self.rel))
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _record(self) -> str:
        host, pid, _ = self.job.split(":")
        return json.dumps({"job": self.job, "pid": int(pid), "host": host,
                           "since": time.strftime("%Y-%m-%d %H:%M:%S"), "expires": time.time() + self.TTL})

    def _write(self, **condition) -> bool:
        """Write our record; with a condition (S3), only if it holds: False when it did not."""
        if self._s3 is None:
            self.store.write_text(self.rel, self._record())
            return True
        bucket, _, key = self.store.full(self.rel).partition("/")
        try:
            reply = self._s3.call_s3("put_object", Bucket=bucket, Key=key, Body=self._record().encode(), **condition)
        except OSError as e:
            if _precondition_failed(e):
                return False
            raise
        self.etag = reply["ETag"]
        return True

    def _version(self) -> str | None:
        """The ETag of the lease object now, or None when there is none."""
        bucket, _, key = self.store.full(self.rel).partition("/")
        try:
            return self._s3.call_s3("head_object", Bucket=bucket, Key=key)["ETag"]
        except FileNotFoundError:
            return None

    def acquire(self) -> dict | None:
        """Take the lease; returns None, or the holder's record when another job has it."""
        version = self._version() if self._s3 is not None else None  # before the content: never newer than it
        current = self.holder()
        if current and current.get("job") != self.job and current.get("expires", 0) > time.time():
            return current
        if self._s3 is not None:
            # none there: create it only if still none; an expired one: replace exactly the version read
            if not self._write(**({"IfMatch": version} if version else {"IfNoneMatch": "*"})):
                return self.holder() or {"job": "unknown"}
        else:
            self._write()
            time.sleep(self.SETTLE)
            current = self.holder()
            if not current or current.get("job") != self.job:
                return current or {"job": "unknown"}
        self.held = True
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()
        return None

    def _renew(self) -> None:
        while not self._stop.wait(self.TTL / 3):
            try:
                if self._s3 is not None:
                    ours = self._write(IfMatch=self.etag)
                else:
                    current = self.holder()
                    ours = bool(current) and current.get("job") == self.job and self._write()
                if not ours:
                    self.held = False
                    return
            except Exception:  # a blip: OSError, or botocore's EndpointConnectionError, which s3fs
                pass  # raises as it is when the store cannot be reached. The next renewal tries again before the
                # lease expires; one that another job took over meanwhile refuses it then (held turns False)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.held:
            self.held = False
            current = self.holder()
            if current and current.get("job") == self.job:
                self.store.delete([self.rel])

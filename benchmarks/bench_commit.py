"""How the commit scales with the number of parts: N tiny parts (one episode of a few frames each,
two cameras) cloned from one real part, on local disk and (with --s3) in an S3 server started on
127.0.0.1 (SeaweedFS, as the tests do). Prints the time to list the parts and read their manifests
(`read_manifests` + `select_complete`, what a resume does at start) and the whole commit.

    python benchmarks/bench_commit.py --parts 2000 [--s3] [--work /tmp/bc]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def make_parts(template: Path, n: int, put) -> None:
    """n parts cloned from one (its single episode renamed ep000000..): put(rel, bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = json.loads((template / "manifest.json").read_text())
    table = pq.read_table(template / "data.parquet")
    videos = {p.name: p.read_bytes() for p in (template / "videos").iterdir()}
    entry = manifest["episodes"][0]

    def one(i: int) -> None:
        uid, part = f"ep{i:06d}", f"part-bench-{i:06d}"
        sink = pa.BufferOutputStream()
        pq.write_table(table.set_column(table.schema.get_field_index("augment_uid"), "augment_uid",
                                        pa.array([uid] * table.num_rows)), sink)
        for name, data in videos.items():
            put(f".augment/parts/{part}/videos/{name}", data)
        put(f".augment/parts/{part}/data.parquet", sink.getvalue().to_pybytes())
        put(f".augment/parts/{part}/manifest.json", json.dumps(
            {**manifest, "part": part, "episodes": [{**entry, "uid": uid, "source_uid": uid}]}).encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(n)))


def measure(root: str, layout) -> dict:
    from augment.commit import commit
    from augment.parts import read_manifests, select_complete
    from augment.storage import Store

    store = Store(root)
    start = time.perf_counter()
    kept, _, _ = select_complete(read_manifests(store))
    listed = time.perf_counter() - start
    start = time.perf_counter()
    summary = commit(store, layout)
    return {"parts": len(kept), "list_and_merge_s": round(listed, 2), "commit_s": round(time.perf_counter() - start, 2),
            "episodes": summary["episodes"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", type=int, default=2000)
    parser.add_argument("--s3", action="store_true", help="also in a SeaweedFS S3 server on 127.0.0.1")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_commit-"))
    shutil.rmtree(work / "out", ignore_errors=True)

    from conftest import make_lerobot_dataset

    from augment.layout import Layout
    from augment.local import run_local
    from augment.pipeline import _source_features, _source_schema
    from augment.source import LeRobotSource
    from augment.spec import load_spec

    source = work / "src"
    if not source.exists():
        make_lerobot_dataset(source, episodes=(4,))
    spec = load_spec(REPO / "pipelines/copy.yaml", [f"source.root={source}", f"sink.root={work / 'one'}",
                                                     "sink.overwrite=true"])
    run_local(spec, progress=False)
    template = next((work / "one" / ".augment" / "parts").iterdir())
    src = LeRobotSource(source)
    features = _source_features(src)
    layout = Layout.from_source(src.info, features, video_files={k: src.video_file(0, k) for k in src.cameras},
                                schema=_source_schema(src, features))

    def put_local(rel: str, data: bytes) -> None:
        path = work / "out" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    make_parts(template, args.parts, put_local)
    print("local:", json.dumps(measure(str(work / "out"), layout)))
    if args.s3:
        from s3server import SeaweedS3

        server = SeaweedS3(work / "s3").start()
        try:
            os.environ.update(server.env())
            server.create_bucket("bench")
            fs = server.filesystem()

            def put_s3(rel: str, data: bytes) -> None:
                with fs.open_output_stream(f"bench/out/{rel}") as f:
                    f.write(data)

            start = time.perf_counter()
            make_parts(template, args.parts, put_s3)
            print(f"(uploaded {args.parts} parts in {time.perf_counter() - start:.1f}s)")
            print("s3:", json.dumps(measure("s3://bench/out", layout)))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

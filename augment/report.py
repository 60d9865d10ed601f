"""What a person reads at the end: the job report and dataset summaries."""

from __future__ import annotations

from pathlib import Path

from augment.source import LeRobotSource


def dataset_summary(root: str | Path) -> dict:
    source = LeRobotSource(root)
    episodes = source.episodes
    tasks = sorted({t for e in episodes for t in (e.get("tasks") or [])})
    features = {k: {"dtype": f["dtype"], "shape": list(f["shape"])} for k, f in source.features.items()}
    cameras = {}
    for key in source.cameras:
        feat = source.features[key]
        info = feat.get("info") or {}
        cameras[key] = {"storage": feat["dtype"], "shape": list(feat["shape"]),
                        "codec": info.get("video.codec"), "pix_fmt": info.get("video.pix_fmt")}
    return {
        "root": source.store.uri(),
        "codebase_version": source.info.get("codebase_version"),
        "episodes": len(episodes),
        "frames": sum(e["length"] for e in episodes),
        "fps": source.fps,
        "robot_type": source.info.get("robot_type"),
        "cameras": cameras,
        "features": features,
        "tasks": tasks,
    }


def print_summary(s: dict) -> None:
    print(f"{s['root']}  (LeRobot {s['codebase_version']})")
    print(f"  episodes {s['episodes']}   frames {s['frames']}   fps {s['fps']}   robot {s['robot_type']}")
    print("  cameras:")
    for key, cam in s["cameras"].items():
        shape = "x".join(map(str, cam["shape"]))
        print(f"    {key:40s} {cam['storage']:6s} {shape:12s} {cam['codec'] or ''} {cam['pix_fmt'] or ''}")
    print("  features:")
    for key, feat in s["features"].items():
        print(f"    {key:40s} {feat['dtype']:8s} {feat['shape']}")
    print(f"  tasks ({len(s['tasks'])}):")
    for task in s["tasks"]:
        print(f"    {task}")


def print_report(r: dict) -> None:
    print()
    print(f"augment job {r['name']!r} finished in {r['wall_seconds']:.1f} s")
    print(f"  episodes in       {r['episodes_in']:6d}   (already done before this run: {r['episodes_done_before']})")
    print(f"  episodes out      {r['episodes_out']:6d}   frames {r['frames_out']}")
    print(f"  dropped           {len(r['dropped']):6d}")
    for d in r["dropped"][:20]:
        print(f"    {d['uid']:30s} {d.get('stage', '?')}: {d.get('reason', '?')}")
    if r["seconds_per_stage"]:
        print("  seconds per stage (summed over episodes):")
        for stage, seconds in r["seconds_per_stage"].items():
            print(f"    {stage:20s} {seconds:8.2f}")
    print(f"  dataset: {r['output']}")
    print(f"  report:  {r['output']}/meta/augment_report.json")
    print("  load it with lerobot:")
    print(f"    from lerobot.datasets.lerobot_dataset import LeRobotDataset; "
          f"ds = LeRobotDataset('{r.get('repo_id', 'local/augmented')}', root='{r['output']}')")

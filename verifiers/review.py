"""A static review page for a job's output: one HTML file, images embedded as base64 PNG.

Per kept sample: the source episode's first frame, the sample's first (edited) frame, a strip of
frames across the rollout, and its scores. Per dropped sample (listed in meta/augment_report.json;
its frames were never written): the source's first frame, its scores and the reason it was dropped.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import yaml

from augment.source import LeRobotSource

STYLE = """body{font-family:sans-serif;margin:16px;background:#fafafa;font-size:14px}
h3{margin:0 0 4px 0;font-size:15px}p{margin:2px 0 6px 0}
.sample{background:#fff;border:1px solid #ccc;border-radius:6px;padding:8px;margin:10px 0}
.row{display:flex;flex-wrap:wrap;align-items:flex-start;gap:12px}
figure{margin:0;display:inline-block;text-align:center}figcaption{font-size:11px;color:#555}
.strip{display:flex;flex-wrap:wrap;gap:2px}
.sample.dropped{border-color:#c33;background:#fff4f4}
.reason{color:#a00;font-weight:bold}
img{image-rendering:pixelated;margin:2px;border:1px solid #ddd}
table.scores{border-collapse:collapse;font-size:12px}table.scores td{padding:1px 6px;border-bottom:1px solid #eee}
td.low{color:#a00;font-weight:bold}"""


def png_data_uri(image: np.ndarray, height: int = 128) -> str:
    from PIL import Image

    pil = Image.fromarray(image)
    if pil.height != height:
        pil = pil.resize((max(1, round(pil.width * height / pil.height)), height), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(image: np.ndarray | None, title: str, height: int = 128) -> str:
    """A captioned image (or a note that it is missing)."""
    if image is None:
        return f'<figure><figcaption>{html.escape(title)}: not available</figcaption></figure>'
    return (f'<figure><img src="{png_data_uri(image, height)}" title="{html.escape(title)}" '
            f'alt="{html.escape(title)}"><figcaption>{html.escape(title)}</figcaption></figure>')


def _scores_table(scores: dict) -> str:
    rows = []
    for name, value in sorted(scores.items(), key=lambda kv: (kv[0] != "total", kv[0])):
        low = isinstance(value, (int, float)) and value < 0.5
        shown = f"{value:.3f}" if isinstance(value, (int, float)) else html.escape(str(value))
        rows.append(f'<tr><td>{html.escape(name)}</td><td class="{"low" if low else ""}">{shown}</td></tr>')
    return f'<table class="scores">{"".join(rows)}</table>' if rows else "<i>no scores</i>"


class _SourceFrames:
    """First frames of source episodes, read once each."""

    def __init__(self):
        self.sources: dict[str, LeRobotSource | None] = {}

    def first_frame(self, root: str | None, index: int | None, camera: str | None) -> np.ndarray | None:
        if root is None or index is None:
            return None
        if root not in self.sources:
            try:
                self.sources[root] = LeRobotSource(root)
            except Exception:  # the source may have moved; the page still shows everything else
                self.sources[root] = None
        source = self.sources[root]
        if source is None:
            return None
        episode = source.read_episode(int(index))
        key = camera if camera in episode.frames else next(iter(episode.frames), None)
        return episode.frames[key][0] if key else None


def build_review(root: str | Path, out: str | Path, strip: int = 8, camera: str | None = None) -> Path:
    """Write the review page of the dataset at `root` to `out`; returns the path."""
    root, out = Path(root), Path(out)
    dataset = LeRobotSource(root)
    camera = camera or (dataset.cameras[0] if dataset.cameras else None)
    report_path = root / "meta" / "augment_report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    spec_path = root / "meta" / "augment_spec.yaml"
    spec_source = (yaml.safe_load(spec_path.read_text()) or {}).get("source", {}) if spec_path.is_file() else {}
    sources = _SourceFrames()
    parts = [f"<h1>Review: {html.escape(report.get('name', root.name))}</h1>",
             f"<p>{html.escape(str(root.resolve()))}: {len(dataset.episodes)} kept, "
             f"{len(report.get('dropped', []))} dropped</p>"]

    for row in dataset.episodes:
        prov = json.loads(row.get("augment/provenance") or "{}")
        episode = dataset.read_episode(row["episode_index"])
        frames = episode.frames.get(camera) if camera else None
        src = prov.get("source", {})
        src_frame = sources.first_frame(src.get("root"), src.get("episode_index"), camera)
        strip_imgs = ""
        if frames is not None:
            idx = np.linspace(0, len(frames) - 1, min(strip, len(frames))).round().astype(int)
            strip_imgs = "".join(_img(frames[i], f"frame {i}", 96) for i in idx)
        parts.append(
            f'<div class="sample kept" id="{html.escape(row.get("augment/uid") or episode.uid)}">'
            f'<h3>episode {row["episode_index"]} ({html.escape(row.get("augment/uid") or "")}): kept</h3>'
            f'<p>{html.escape(episode.task)}</p>'
            f'<div class="row">{_img(src_frame, "source first frame")}'
            f'{_img(frames[0] if frames is not None else None, "edited first frame")}'
            f'{_scores_table(prov.get("scores", {}))}</div><div class="strip">{strip_imgs}</div></div>'
        )

    for dropped in report.get("dropped", []):
        source_uid = dropped.get("source_uid", "")
        index = int(source_uid[2:]) if source_uid.startswith("ep") and source_uid[2:].isdigit() else None
        src_frame = sources.first_frame(spec_source.get("root"), index, camera)
        parts.append(
            f'<div class="sample dropped" id="{html.escape(dropped.get("uid", ""))}">'
            f'<h3>{html.escape(dropped.get("uid", ""))}: dropped by {html.escape(str(dropped.get("stage", "?")))}</h3>'
            f'<p class="reason">{html.escape(str(dropped.get("reason", "")))}</p>'
            f'<div class="row">{_img(src_frame, "source first frame")}{_scores_table(dropped.get("scores", {}))}</div></div>'
        )
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>augment review</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out

"""The example specs in pipelines/edit_*.yaml: every one validates, and two run end to end on a
lerobot-written dataset (the paste one weight-free, the rollout one on tiny random SAM/OWLv2/SD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import cv2
import pytest

from augment.local import run_local
from augment.spec import load_spec
from test_editors_compose import write_asset
from test_editors_diffusion import tiny_pipeline
from test_editors_segment import TINY_SAM, owlv2, sam_checkpoint  # noqa: F401  (fixtures)

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
EXPECTED_TYPES = {"edit_paste_objects": "add_object", "edit_inpaint_object": "add_object",
                  "edit_inpaint_background": "inpaint_background", "edit_backdrop": "backdrop",
                  "edit_background_folder": "background", "edit_background": "background",
                  "edit_surface": "surface", "edit_lighting": "lighting"}


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "assets").mkdir()
    write_asset(tmp_path / "assets" / "green_ball.png")
    (tmp_path / "backgrounds").mkdir()
    write_asset(tmp_path / "backgrounds" / "bg.png")
    return tmp_path


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_example_spec_validates(name, folders):
    overrides = [f"sink.root={folders / 'out'}"]
    if name == "edit_paste_objects":
        overrides.append(f"stages.0.assets={folders / 'assets'}")
    if name == "edit_background_folder":
        overrides.append(f"stages.0.backgrounds={folders / 'backgrounds'}")
    spec = load_spec(PIPELINES / f"{name}.yaml", overrides)
    assert [s.type for s in spec.stages if s.type != "source"] == [EXPECTED_TYPES[name]]


def read_output(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/augmented", root=root)


def test_surface_spec_drops_what_it_could_not_edit(source_dataset, folders):
    """On a lerobot-written scene where the weight-free segmenter finds no work surface (a flat band
    under a gradient, 32-48 px), each variant is dropped with the cameras named, not written as a
    "new table surface" that is the source re-encoded (as it was before)."""
    spec = load_spec(PIPELINES / "edit_surface.yaml", [
        f"source.root={source_dataset['root']}", "source.episodes=[0, 1]", f"sink.root={folders / 'out'}",
        "stages.0.cameras=[observation.images.front]"])
    report = run_local(spec, progress=False)
    assert report["episodes_out"] == 0 and len(report["dropped"]) == 4  # 2 episodes x 2 variants
    assert {d["reason"] for d in report["dropped"]} == {"no work surface found in observation.images.front"}
    assert {d["uid"] for d in report["dropped"]} == {f"ep00000{e}-surface{v}" for e in (0, 1) for v in (0, 1)}


def test_paste_objects_spec_runs_end_to_end(source_dataset, folders):
    out, review = folders / "out", folders / "review"
    spec = load_spec(PIPELINES / "edit_paste_objects.yaml", [
        f"source.root={source_dataset['root']}", "source.episodes=[0, 1]", f"sink.root={out}",
        f"stages.0.assets={folders / 'assets'}", f"stages.0.review_dir={review}", "stages.0.count=1",
        # this source's backdrop is a saturated colour gradient: only motion marks the foreground
        "stages.0.segmenter.saturation_threshold=null",
        "stages.0.cameras=[observation.images.front]", "stages.0.surface_box=[0, 0.4, 1, 1]"])
    report = run_local(spec, progress=False)
    assert report["episodes_out"] + len(report["dropped"]) == 4  # 2 episodes x 2 variants
    assert report["episodes_out"] >= 2, report["dropped"]
    dataset = read_output(out)
    assert dataset.meta.total_episodes == report["episodes_out"]
    pngs = sorted(p.name for p in review.glob("ep*.png"))
    assert len(pngs) == report["episodes_out"] and pngs[0].startswith("ep000000-add_object")
    # one image per job stacks every episode's row, and the report says where it is
    grid = cv2.imread(str(review / "review.png"))
    first = cv2.imread(str(review / pngs[0]))
    assert report["stages"]["add_object"]["review"] == str(review / "review.png")
    assert grid.shape[0] == sum(cv2.imread(str(review / p)).shape[0] + 4 for p in pngs)
    assert grid.shape[1] == first.shape[1]


def test_inpaint_object_rollout_spec_runs_end_to_end(source_dataset, folders, sam_checkpoint, owlv2):  # noqa: F811
    model = tiny_pipeline(folders / "sd_inpaint", inpaint=True)
    out = folders / "out"
    spec = load_spec(PIPELINES / "edit_inpaint_object.yaml", [
        f"source.root={source_dataset['root']}", "source.episodes=[0]", f"sink.root={out}",
        "stages.0.resources.num_gpus=0", "stages.0.variants=1", f"stages.0.review_dir={folders / 'review'}",
        f"stages.0.segmenter.checkpoint={sam_checkpoint}", "stages.0.segmenter.model_type=custom",
        f"stages.0.segmenter.architecture={TINY_SAM.model_dump_json()}", f"stages.0.segmenter.detector={owlv2}",
        "stages.0.segmenter.device=cpu", "stages.0.segmenter.dtype=float32", "stages.0.segmenter.grow=0",
        "stages.0.segmenter.box_threshold=0.0", "stages.0.margin=0", "stages.0.size=[0.1, 0.12]",
        "stages.0.surface_prompt=null",  # a random detector finds no table
        f"stages.0.diffusion.model={model}", "stages.0.diffusion.device=cpu", "stages.0.diffusion.dtype=float32",
        "stages.0.diffusion.steps=2", "stages.0.diffusion.resolution=32"])
    report = run_local(spec, progress=False)
    assert report["episodes_out"] == 1, report["dropped"]
    dataset = read_output(out)
    task = dataset.meta.tasks.index[0]
    assert task.startswith("pick up the ") and task.split("pick up the ")[1] in ("banana", "red mug", "tennis ball")
    # rollout mode: only frame 0 was edited; the rest of the episode is the source's (up to video codec noise)
    source = source_dataset["episodes"][0]["frames"]["observation.images.front"]
    edited = np.stack([(dataset[i]["observation.images.front"].numpy().transpose(1, 2, 0) * 255).round()
                       for i in range(3)]).astype(np.int16)
    assert np.abs(edited[1:] - source[1:3]).mean() < 6
    assert (folders / "review" / "ep000000.png").is_file()


def test_spec_errors_point_at_the_segmenter_line(tmp_path):
    from augment.spec import SpecError

    path = tmp_path / "bad.yaml"
    path.write_text(f"source:\n  root: {tmp_path}\nsink:\n  root: {tmp_path / 'out'}\nstages:\n"
                    "  - type: backdrop\n    prompts: [a kitchen]\n    diffusion: {model: m}\n"
                    "    segmenter:\n      kind: sam\n      automatic: true\n      treshold: 3\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert f"{path}:12: stages[0].segmenter.treshold: unknown key; valid keys: kind," in message

    path.write_text(path.read_text().replace("      treshold: 3\n", ""))
    with pytest.raises(SpecError, match=r"bad.yaml:9: stages\[0\].segmenter: .*kind 'sam' needs `checkpoint`"):
        load_spec(path)

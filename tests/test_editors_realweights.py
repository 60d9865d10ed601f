"""The same edits on real downloaded weights. Skipped unless the environment names them:
    AUGMENT_SAM_CHECKPOINT   a segment-anything .pth (vit_b unless AUGMENT_SAM_TYPE says otherwise)
    AUGMENT_OWLV2            an OWLv2 id or local folder (google/owlv2-base-patch16-ensemble)
    AUGMENT_SD_INPAINT       an inpainting pipeline id or folder (stabilityai/stable-diffusion-2-inpainting)
Run: AUGMENT_SAM_CHECKPOINT=... pytest tests/test_editors_realweights.py -m slow
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from test_editors_compose import make_episode

CAM = "observation.images.top"
SAM = os.environ.get("AUGMENT_SAM_CHECKPOINT")
OWLV2 = os.environ.get("AUGMENT_OWLV2")
SD_INPAINT = os.environ.get("AUGMENT_SD_INPAINT")
DEVICE = "cuda" if os.environ.get("AUGMENT_DEVICE", "cpu") == "cuda" else "cpu"

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not (SAM and OWLV2), reason="set AUGMENT_SAM_CHECKPOINT and AUGMENT_OWLV2")
def test_text_segmenter_finds_the_red_cube():
    from editors.segmenter import Segmenter
    from editors.specs import SegmenterSpec

    spec = SegmenterSpec(kind="text", checkpoint=SAM, model_type=os.environ.get("AUGMENT_SAM_TYPE", "vit_b"),
                         detector=OWLV2, keep=["red square"], device=DEVICE, protect_motion=False, grow=0)
    seg = Segmenter(spec)(make_episode().frames[CAM], [0])
    cube = np.zeros((64, 64), bool)
    cube[44:52, 8:16] = True
    assert (seg.foreground[0] & cube).sum() / cube.sum() > 0.5


@pytest.mark.skipif(not SD_INPAINT, reason="set AUGMENT_SD_INPAINT")
def test_inpaint_background_on_real_weights_keeps_the_foreground():
    from editors.specs import InpaintBackgroundSpec

    stage = InpaintBackgroundSpec(prompts=["a marble kitchen counter"],
                                  diffusion={"model": SD_INPAINT, "device": DEVICE, "steps": 10,
                                             "dtype": "bfloat16" if DEVICE == "cuda" else "float32"}).build()
    stage.setup()
    episode = make_episode()
    [out] = stage([episode])
    seg = stage.segmenter(episode.frames[CAM], [0])
    assert np.array_equal(out.frames[CAM][0][seg.foreground[0]], episode.frames[CAM][0][seg.foreground[0]])
    assert (out.frames[CAM][0] != episode.frames[CAM][0]).any()

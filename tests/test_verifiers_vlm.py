"""The VLM verifier on a tiny random-weight Qwen2-VL built from a config, with a locally built tokenizer:
prompt construction, the yes-probability math, batching, trials and determinism."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from augment.episode import Episode  # noqa: E402
from verifiers.vlm import answer_token_ids, sample_frame_indices, yes_probability  # noqa: E402
from verifiers.specs import VLMSpec  # noqa: E402

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
# The chat template of Qwen2-VL, reduced to what the verifier sends: a user turn of images and text.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ item['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2vl(folder) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration,
                              Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor)

    words = ("[UNK] [PAD] yes no Yes No user assistant system these are frames of a robot video in order the "
             "task is does do this any object duplicate vanish appear from nowhere or change its colour shape "
             "identity motion and objects physically plausible without jumps moving on their own present "
             "unchanged every frame scene background answer pick place puck to goal . , ' s : ? ( )").split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                        additional_special_tokens=SPECIAL)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14,
                                            merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    os.environ["HF_HOME"] = str(tmp_path_factory.mktemp("hf_home"))
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny_qwen2vl"))


def make_episode(seed: int, uid: str = "ep000000", length: int = 12) -> Episode:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(length, 40, 48, 3), dtype=np.uint8)
    return Episode(frames={"observation.images.top": frames}, task="pick place puck to goal", fps=10, uid=uid,
                   provenance={"source": {"episode_index": 0}})


def build_stage(model: str, **overrides):
    spec = VLMSpec(model=model, num_frames=3, image_size=56, **overrides)
    stage = spec.build()
    stage.setup()
    return stage


def test_sample_frame_indices_cover_episode_and_shift_by_trial():
    assert sample_frame_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert sample_frame_indices(3, 8).tolist() == [0, 1, 2]
    shifted = sample_frame_indices(100, 4, trial=1, trials=2)
    assert shifted.tolist() == [16, 50, 82, 99]


def test_yes_probability_is_softmax_over_yes_and_no_logits():
    logits = torch.tensor([[0.0, 2.0, -1.0, 0.5, 3.0], [1.0, -2.0, 0.0, 4.0, 0.0]])
    p = yes_probability(logits, yes_ids=[1, 3], no_ids=[4])
    by_hand = []
    for row in logits.tolist():
        e = np.exp([row[1], row[3], row[4]])
        by_hand.append((e[0] + e[1]) / e.sum())
    np.testing.assert_allclose(p.numpy(), by_hand, rtol=1e-6)


def test_prompt_has_one_image_block_per_frame_and_the_task(tiny_vlm):
    stage = build_stage(tiny_vlm)
    episode = make_episode(0)
    text = stage.prompt(stage.spec.questions[0], episode, 3)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 3
    assert "The robot's task is: pick place puck to goal." in text
    assert text.endswith("Answer yes or no.<|im_end|>\n<|im_start|>assistant\n")
    edit_text = stage.prompt(stage.spec.questions[3], episode, 3)
    assert "the scene's background and objects" in edit_text
    episode.provenance["edit"] = {"description": "a wooden background"}
    assert "Is a wooden background present" in stage.prompt(stage.spec.questions[3], episode, 3)
    assert stage.yes_ids and stage.no_ids
    tok = stage.processor.tokenizer
    assert {tok.convert_ids_to_tokens(i) for i in stage.yes_ids} == {"yes", "Yes"}


def test_scores_equal_a_hand_computed_softmax_of_the_model_logits(tiny_vlm):
    stage = build_stage(tiny_vlm)
    episode = make_episode(1)
    scores = stage.score(episode)
    assert set(scores) == {"task", "objects", "physics", "edit"}
    frames = stage.images(episode, 0)
    for question in stage.spec.questions:
        inputs = stage.processor(text=[stage.prompt(question, episode, len(frames))], images=[frames],
                                 return_tensors="pt")
        with torch.no_grad():
            last = stage.model(**inputs).logits[0, -1].double().numpy()
        yes = np.exp(last[stage.yes_ids]).sum()
        no = np.exp(last[stage.no_ids]).sum()
        p_yes = yes / (yes + no)
        expected = p_yes if question.good_answer == "yes" else 1 - p_yes
        assert scores[question.name] == pytest.approx(expected, abs=1e-4)


def test_batching_and_padding_do_not_change_scores(tiny_vlm):
    one_by_one = build_stage(tiny_vlm, prompts_per_batch=1)
    batched = build_stage(tiny_vlm, prompts_per_batch=8)
    episode = make_episode(2)
    a, b = one_by_one.score(episode), batched.score(episode)
    for name in a:
        assert a[name] == pytest.approx(b[name], abs=1e-4)


def test_stage_is_deterministic_writes_scores_and_drops_under_threshold(tiny_vlm):
    stage = build_stage(tiny_vlm, trials=2)
    first = stage([make_episode(3, "ep000003")])[0]
    second = stage([make_episode(3, "ep000003")])[0]
    assert first.provenance["scores"] == second.provenance["scores"]
    scores = first.provenance["scores"]
    assert {"vlm/task", "vlm/objects", "vlm/physics", "vlm/edit", "vlm", "total"} <= set(scores)
    assert scores["total"] == scores["vlm"]
    assert 0 < scores["vlm"] < 1
    assert "dropped" not in first.provenance

    strict = build_stage(tiny_vlm, trials=2, thresholds={"min_score": 0.999})
    dropped = strict([make_episode(3, "ep000003")])[0]
    assert dropped.provenance["dropped"]["stage"] == "vlm"
    assert "vlm = " in dropped.provenance["dropped"]["reason"]
    assert dropped.provenance["dropped"]["scores"]["total"] == scores["total"]


def test_trials_average_over_shifted_frame_samples(tiny_vlm):
    one = build_stage(tiny_vlm, trials=1)
    two = build_stage(tiny_vlm, trials=2)
    episode = make_episode(4, length=30)
    shifted = two.images(episode, 1)
    assert not np.array_equal(np.asarray(shifted[0]), np.asarray(one.images(episode, 0)[0]))
    s1, s2 = one.score(episode), two.score(episode)
    # trial 0 of the two-trial run is the one-trial run; the average includes a second, different view
    assert any(abs(s1[k] - s2[k]) > 1e-6 for k in s1)


def test_bad_threshold_name_and_missing_yes_token_are_clear_errors():
    with pytest.raises(ValueError, match="unknown check"):
        VLMSpec(model="x", thresholds={"min_check": {"nonsense": 0.5}})

    class NoYes:
        unk_token_id = 0

        def encode(self, text, add_special_tokens=False):
            return [0]

    with pytest.raises(ValueError, match="single-token 'yes'/'no'"):
        answer_token_ids(NoYes())

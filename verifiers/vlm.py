"""VLM verifier: a transformers image-text-to-text model answers yes/no rubric questions about K frames.

Each answer is read from the logits, not from generated text: at the position right after the
assistant prompt, softmax over the logits of the "yes" and "no" tokens (every single-token spelling
the tokenizer has: yes/Yes/YES, with or without a leading space) gives P(yes). That is a calibrated,
rankable number even from a model whose free text would be unreliable, which is how VLMs are best
used here: to rank best-of-N samples, while the weight-free consistency checks catch physics errors.

Works with any model AutoModelForImageTextToText loads whose processor takes several images per
prompt (Qwen2/2.5-VL, SmolVLM/SmolVLM2, Idefics3, Cosmos-Reason1): named by hub id or local path.
transformers and torch are imported in setup(), never when a spec is validated.
"""

from __future__ import annotations


import numpy as np

from augment.episode import Episode
from augment.stage import Stage
from verifiers.scores import failures, record_scores, weighted_mean
from verifiers.specs import Question, VLMSpec

YES_WORDS = ("yes", "Yes", "YES")
NO_WORDS = ("no", "No", "NO")


def sample_frame_indices(length: int, k: int, trial: int = 0, trials: int = 1) -> np.ndarray:
    """K evenly spaced indices; trial j shifts them by j/trials of the spacing, so trials see other frames."""
    if length <= k:
        return np.arange(length)
    spacing = (length - 1) / (k - 1) if k > 1 else 0.0
    shift = spacing * trial / trials if k > 1 else (length - 1) * trial / trials
    idx = np.arange(k) * spacing + shift
    return np.clip(np.round(idx), 0, length - 1).astype(int)


def yes_probability(logits, yes_ids: list[int], no_ids: list[int]):
    """P(yes) per row: softmax over the yes and no token logits, summed over the yes tokens.
    `logits` is a (N, vocab) torch tensor of next-token logits at the answer position."""
    import torch

    pair = torch.cat([logits[:, yes_ids], logits[:, no_ids]], dim=1).float()
    return torch.softmax(pair, dim=1)[:, : len(yes_ids)].sum(dim=1)


def answer_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """Ids of every spelling of yes / no that is a single token, so the answer is one logit lookup."""

    def single(words: tuple[str, ...]) -> list[int]:
        ids = []
        for word in words:
            for spelling in (word, " " + word):
                encoded = tokenizer.encode(spelling, add_special_tokens=False)
                if len(encoded) == 1 and encoded[0] != tokenizer.unk_token_id and encoded[0] not in ids:
                    ids.append(encoded[0])
        return ids

    yes_ids, no_ids = single(YES_WORDS), single(NO_WORDS)
    if not yes_ids or not no_ids or set(yes_ids) & set(no_ids):
        raise ValueError(f"the model's tokenizer has no single-token 'yes'/'no' (yes ids {yes_ids}, no ids {no_ids}); "
                         "the VLM verifier reads the answer from those tokens' logits")
    return yes_ids, no_ids


class VLMStage(Stage):
    spec: VLMSpec

    def setup(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from augment.devices import resolve_device

        spec = self.spec
        device = resolve_device(spec.device)
        dtype = "auto" if spec.dtype == "auto" else getattr(torch, spec.dtype)
        self.processor = AutoProcessor.from_pretrained(spec.model)
        self.model = AutoModelForImageTextToText.from_pretrained(spec.model, dtype=dtype).to(device).eval()
        self.device = device
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # the answer position is then the last one in every row
        self.yes_ids, self.no_ids = answer_token_ids(tokenizer)

    def prompt(self, question: Question, episode: Episode, num_images: int) -> str:
        edit = episode.provenance.get("edit", {}).get("description") or self.spec.edit_description
        text = question.text.format(task=episode.task or "(no task given)", edit=edit)
        content = [{"type": "image"} for _ in range(num_images)]
        content.append({"type": "text", "text": f"{text} Answer yes or no."})
        messages = [{"role": "user", "content": content}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def images(self, episode: Episode, trial: int) -> list:
        from PIL import Image

        camera = self.spec.camera or next(iter(episode.frames))
        if camera not in episode.frames:
            raise ValueError(f"{self.spec.label}: camera {camera!r} not in episode {episode.uid} "
                             f"(has {list(episode.frames)})")
        video = episode.frames[camera]
        picked = video[sample_frame_indices(len(video), self.spec.num_frames, trial, self.spec.trials)]
        h, w = video.shape[1:3]
        scale = self.spec.image_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return [Image.fromarray(frame).resize(size, Image.BICUBIC) for frame in picked]

    def yes_probabilities(self, prompts: list[str], images: list[list]) -> np.ndarray:
        """P(yes) for each (prompt, images) pair, `prompts_per_batch` at a time."""
        import torch

        out = []
        step = self.spec.prompts_per_batch
        for start in range(0, len(prompts), step):
            inputs = self.processor(text=prompts[start:start + step], images=images[start:start + step],
                                    padding=True, return_tensors="pt").to(self.device)
            with torch.no_grad():
                logits = self.model(**inputs).logits[:, -1, :]
            out.append(yes_probability(logits, self.yes_ids, self.no_ids).cpu().numpy())
        return np.concatenate(out)

    def score(self, episode: Episode) -> dict[str, float]:
        """Per question: the probability of the good answer, averaged over trials."""
        prompts, images, names = [], [], []
        for trial in range(self.spec.trials):
            frames = self.images(episode, trial)
            for question in self.spec.questions:
                prompts.append(self.prompt(question, episode, len(frames)))
                images.append(frames)
                names.append(question)
        p_yes = self.yes_probabilities(prompts, images)
        per_question: dict[str, list[float]] = {}
        for question, p in zip(names, p_yes):
            good = float(p) if question.good_answer == "yes" else 1.0 - float(p)
            per_question.setdefault(question.name, []).append(good)
        return {name: float(np.mean(values)) for name, values in per_question.items()}

    def __call__(self, episodes: list[Episode]) -> list[Episode]:
        weights = {q.name: q.weight for q in self.spec.questions}
        for episode in episodes:
            checks = self.score(episode)
            combined = weighted_mean(checks, weights)
            scores = record_scores(episode.provenance, self.spec.label, checks, combined, self.spec.weight)
            reasons = failures(checks, combined, self.spec.thresholds, self.spec.label)
            self.record(episode, scores={k: round(v, 4) for k, v in checks.items()}, passed=not reasons)
            if reasons:
                self.drop(episode, "; ".join(reasons), **scores)
        return episodes

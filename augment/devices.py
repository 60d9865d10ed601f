"""Where a model runs: one rule for every stage that loads one."""

from __future__ import annotations


def resolve_device(name: str) -> str:
    """'auto' is 'cuda' when torch sees a GPU, else 'cpu'. Asking for CUDA without one is an error
    that says so, not a crash deep inside a model's .to()."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no CUDA GPU; use device: cpu or auto")
    return name

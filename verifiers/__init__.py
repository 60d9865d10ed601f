"""verifiers stages: see TYPES for the YAML type names they provide."""

TYPES: dict[str, str] = {
    "consistency": "verifiers.consistency:ConsistencySpec",
    "vlm": "verifiers.vlm:VLMSpec",
    "learned": "verifiers.learned:LearnedSpec",
}

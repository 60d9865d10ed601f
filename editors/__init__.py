"""Image edits: segmentation and background / object edits. TYPES maps YAML type names to spec classes."""

TYPES: dict[str, str] = {
    "background": "editors.background:BackgroundSpec",
}

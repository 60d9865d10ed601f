"""Image edits: segmentation and background / object edits. TYPES maps YAML type names to spec classes."""

TYPES: dict[str, str] = {
    "background": "editors.background:BackgroundSpec",
    "surface": "editors.surface:SurfaceSpec",
    "lighting": "editors.lighting:LightingSpec",
    "inpaint_background": "editors.inpaint_background:InpaintBackgroundSpec",
    "backdrop": "editors.backdrop:BackdropSpec",
    "add_object": "editors.add_object:AddObjectSpec",
}

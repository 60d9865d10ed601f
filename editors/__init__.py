"""Image edits: segmentation and background / object edits. TYPES maps YAML type names to spec classes."""

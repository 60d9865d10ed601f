"""Image edits: segmentation and background / object edits. Their YAML blocks are in specs.py."""

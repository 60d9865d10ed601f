"""Video generators: image-to-video rollouts from edited frames (diffusers backends) and the
structure-preserving replay. Their YAML blocks are in specs.py; see README.md."""

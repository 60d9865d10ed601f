"""Video generators: image-to-video rollouts from edited frames (diffusers backends) and the
structure-preserving replay. TYPES maps YAML type names to spec classes; see README.md."""

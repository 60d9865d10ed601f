"""generators stages: see TYPES for the YAML type names they provide."""

TYPES: dict[str, str] = {}

"""verifiers stages: see TYPES for the YAML type names they provide."""

"""Labelling stages: actions (and state) for episodes. TYPES maps YAML type names to spec classes.

    idm     an inverse-dynamics model trained with `augment train-idm` labels generated video
    source  keeps the recorded actions (structure-preserving edits of real episodes)
"""

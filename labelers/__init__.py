"""Labelling stages: actions (and state) for episodes. Their YAML blocks are in specs.py.

    idm     an inverse-dynamics model trained with `augment train-idm` labels generated video
    source  keeps the recorded actions (structure-preserving edits of real episodes)
"""

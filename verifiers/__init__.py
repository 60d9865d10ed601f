"""Verifier stages: scores that keep or drop episodes. Their YAML blocks are in specs.py."""

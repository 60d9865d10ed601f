"""augment: turn real robot episodes (LeRobot datasets) into new, synthetic training episodes.

Importing this package is cheap on purpose: torch, diffusers, transformers and ray are imported
only inside the stages and the runner that need them.
"""

__version__ = "0.1.0"

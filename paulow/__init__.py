"""PAULow: train an attention U-Net with a threshold-based dynamic loss from a few annotated
microscopy images, and segment new images and stacks with it."""

__version__ = "0.1.0"

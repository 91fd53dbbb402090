"""Lightning callbacks of medxai, configurable from LightningCLI YAML."""

from callbacks.explanations import ExplanationCallback

__all__ = ["ExplanationCallback"]

"""Lightning callbacks of medxai, configurable from LightningCLI YAML."""

from callbacks.explanations import ExplanationCallback
from callbacks.report import ReportCallback

__all__ = ["ExplanationCallback", "ReportCallback"]

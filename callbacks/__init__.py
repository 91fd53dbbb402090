"""Lightning callbacks of medxai, configurable from LightningCLI YAML."""

from callbacks.explanations import ExplanationCallback
from callbacks.quantus_eval import QuantusCallback
from callbacks.report import ReportCallback

__all__ = ["ExplanationCallback", "QuantusCallback", "ReportCallback"]

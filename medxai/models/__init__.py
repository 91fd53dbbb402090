"""Classification backbones."""

from medxai.models.resnet import STEMS, build_resnet18, resolve_stem

__all__ = ["STEMS", "build_resnet18", "resolve_stem"]

"""medxai: train, explain and evaluate classifiers on MedMNIST with PyTorch Lightning."""

__version__ = "0.1.0"

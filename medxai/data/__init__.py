"""MedMNIST data: file checks, in-memory DataModule and batch transforms."""

from medxai.data.datamodule import MedMNISTDataModule
from medxai.data.sources import DataError, dataset_names
from medxai.data.transforms import Augmentation

__all__ = ["Augmentation", "DataError", "MedMNISTDataModule", "dataset_names"]

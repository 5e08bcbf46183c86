"""Datasets that ship in packages (nothing is downloaded) and loaders for a user's own files."""
from .images import DATASETS, Split, Splits, load_dataset, load_mnist_files

__all__ = ["DATASETS", "Split", "Splits", "load_dataset", "load_mnist_files"]

"""The training data: the competition layout decoded into memory, and the batches served from it.

Re-exported here because scripts (bench/, evaluate.py, predict.py) import `trainer.data`.
"""

from trainer.data.dataset import (
    ImageSet,
    check_labels,
    decode_images,
    load_train_set,
    read_class_names,
    read_id_csv,
    resolve_data_dir,
    split_indices,
    subsample,
)
from trainer.data.loader import Augmenter, Batches, TensorLoader, make_loaders

__all__ = [
    "Augmenter",
    "Batches",
    "ImageSet",
    "TensorLoader",
    "check_labels",
    "decode_images",
    "load_train_set",
    "make_loaders",
    "read_class_names",
    "read_id_csv",
    "resolve_data_dir",
    "split_indices",
    "subsample",
]

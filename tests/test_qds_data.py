"""QDSFormer's datasets: the Eureka composition rule, MedMNIST from the official npz layout."""

import numpy as np
import pytest
import torch

from qdsbench import data
from qdsbench.data.eureka import CompositeDataset, _Pool


def constant_pool(values):
    """One image per class whose pixels all equal the class's value, so quadrants identify their source."""
    images = torch.stack([torch.full((28, 28), v, dtype=torch.uint8) for v in values])
    return _Pool(images, torch.arange(10))


def test_eureka_label_rule():
    digits = constant_pool([10 * c for c in range(10)])
    items = constant_pool([150 + 10 * c for c in range(10)])
    ds = CompositeDataset(digits, items, size=400, seed=0, p_equal=0.5, in_chans=3)
    n_equal = 0
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (3, 56, 56)
        pixel = ((image[0] * 0.5 + 0.5) * 255).round().long()
        upper_left, lower_right = int(pixel[0, 0]) // 10, int(pixel[55, 55]) // 10
        upper_right, lower_left = (int(pixel[0, 55]) - 150) // 10, (int(pixel[55, 0]) - 150) // 10
        equal = upper_left == lower_right
        n_equal += equal
        assert label == (upper_right if equal else lower_left)
    assert 150 < n_equal < 250  # p_equal = 0.5
    first, again = ds[7], ds[7]
    assert torch.equal(first[0], again[0]) and first[1] == again[1]


def test_medmnist_breast_reads_official_splits(shared_data_dir):
    module = data.create("breastmnist", data_dir=str(shared_data_dir), batch_size=32)
    module.setup("fit")
    assert (len(module.train_set), len(module.val_set), len(module.test_set)) == (546, 78, 156)
    labels = module.train_set.tensors[1]
    assert torch.bincount(labels).tolist() == [147, 399]
    x, _ = next(iter(module.train_dataloader()))
    assert x.shape == (32, 1, 28, 28)


def test_medmnist_missing_and_wrong_md5(tmp_path):
    with pytest.raises(data.DatasetMissingError, match="organamnist.npz.*zenodo"):
        data.create("organamnist", data_dir=str(tmp_path)).prepare_data()
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "breastmnist.npz", train_images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(data.DatasetCorruptError, match="md5"):
        data.create("breastmnist", data_dir=str(tmp_path)).prepare_data()

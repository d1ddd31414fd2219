"""ImageFolderDataset and InfiniteSampler: layouts, labels, mirroring, subsets, seeds and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medgan_core.training.dataset import DatasetError, ImageFolderDataset, InfiniteSampler
from tests.training.conftest import disc_images, write_folder, write_zip


def test_folder_and_zip_give_the_same_items(tmp_path):
    images = disc_images(12, 16, channels=3)
    folder = write_folder(tmp_path / "set", images, labels=[i % 3 for i in range(12)])
    archive = write_zip(tmp_path / "set.zip", folder)
    from_dir = ImageFolderDataset(folder, use_labels=True)
    from_zip = ImageFolderDataset(archive, use_labels=True)
    assert len(from_dir) == len(from_zip) == 12
    assert from_dir.image_shape == [3, 16, 16] and from_dir.label_dim == 3
    for i in range(12):
        image, label = from_zip[i]
        np.testing.assert_array_equal(image, images[i].transpose(2, 0, 1))  # files sorted as written
        np.testing.assert_array_equal(image, from_dir[i][0])
        np.testing.assert_array_equal(label, np.eye(3, dtype=np.float32)[i % 3])


def test_zip_reads_are_intact_in_forked_workers(tmp_path):
    """The zip handle opened in the parent must not be shared by forked DataLoader workers (CRC errors)."""
    import torch

    images = disc_images(48, 32)
    archive = write_zip(tmp_path / "set.zip", write_folder(tmp_path / "set", images))
    dataset = ImageFolderDataset(archive)
    dataset[0]  # the parent opens its handle before the workers fork, as the trainer does
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2,
                                         multiprocessing_context="fork")  # fmt: skip
    loaded = torch.cat([batch for batch, _ in loader]).numpy()
    np.testing.assert_array_equal(loaded, np.stack(images)[:, None])


def test_mirror_doubles_with_x_flips_and_max_size_is_a_seeded_subset(tmp_path):
    images = disc_images(20, 8)
    folder = write_folder(tmp_path / "set", images)
    mirrored = ImageFolderDataset(folder, xflip=True)
    assert len(mirrored) == 40
    np.testing.assert_array_equal(mirrored[25][0][0], images[5][:, ::-1])
    np.testing.assert_array_equal(mirrored[5][0][0], images[5])
    for item in (mirrored[5][0], mirrored[25][0], mirrored[5][0]):  # plain, flipped, read again (cached source)
        assert item.flags.writeable and item.flags.c_contiguous  # torch's collate warns on read-only arrays
    a = ImageFolderDataset(folder, max_size=7, random_seed=3)
    b = ImageFolderDataset(folder, max_size=7, random_seed=3)
    c = ImageFolderDataset(folder, max_size=7, random_seed=4)
    assert len(a) == 7
    np.testing.assert_array_equal(a._raw_idx, b._raw_idx)
    assert not np.array_equal(a._raw_idx, c._raw_idx)
    assert ImageFolderDataset(folder).label_dim == 0


def test_mixed_sizes_or_channels_name_the_files(tmp_path):
    folder = write_folder(tmp_path / "set", disc_images(3, 16))
    Image.fromarray(disc_images(1, 32)[0]).save(folder / "big.png")
    Image.fromarray(disc_images(1, 16, channels=3)[0]).save(folder / "colour.png")
    with pytest.raises(DatasetError) as info:
        ImageFolderDataset(folder)
    message = str(info.value)
    assert "big.png" in message and "colour.png" in message and "1x32x32" in message and "3x16x16" in message


@pytest.mark.parametrize("shape", [(24, 24), (16, 32)])
def test_non_square_or_non_power_of_two_is_refused(tmp_path, shape):
    Image.fromarray(np.zeros(shape, dtype=np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DatasetError, match="power-of-two"):
        ImageFolderDataset(tmp_path)


def test_bad_paths_and_labels_are_explained(tmp_path):
    with pytest.raises(DatasetError, match="not a folder or a zip"):
        ImageFolderDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no PNG"):
        ImageFolderDataset(tmp_path / "empty")
    folder = write_folder(tmp_path / "set", disc_images(2, 8))
    with pytest.raises(DatasetError, match="dataset.json"):
        ImageFolderDataset(folder, use_labels=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.float32)).save(folder / "float.tiff.png", format="TIFF")
    with pytest.raises(DatasetError, match="float.tiff.png"):
        ImageFolderDataset(folder)


def test_sampler_is_seeded_and_splits_ranks(tmp_path):
    dataset = list(range(10))

    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    first = take(InfiniteSampler(dataset, seed=1), 30)
    assert first == take(InfiniteSampler(dataset, seed=1), 30)
    assert first != take(InfiniteSampler(dataset, seed=2), 30)
    counts = np.bincount(take(InfiniteSampler(dataset, seed=1), 5000), minlength=10)
    assert counts.min() > 350 and counts.max() < 650  # every image keeps coming, about equally often
    rank0 = take(InfiniteSampler(dataset, rank=0, num_replicas=2, seed=1), 15)
    rank1 = take(InfiniteSampler(dataset, rank=1, num_replicas=2, seed=1), 15)
    merged = [x for pair in zip(rank0, rank1) for x in pair]
    assert merged == first  # the ranks interleave one shared stream


def test_a_truncated_image_in_a_zip_is_named_when_training_reads_it(tmp_path):
    """The headers pass the up-front check; decoding the cut image fails naming it, also in a worker process."""
    import io
    import zipfile

    import torch

    data = []
    for image in disc_images(4, 16):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        data.append(buffer.getvalue())
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, png in enumerate(data):
            zf.writestr(f"00000/img{i:08d}.png", png if i != 2 else png[: len(png) // 2])
    dataset = ImageFolderDataset(archive)
    with pytest.raises(DatasetError, match=r"set\.zip/00000/img00000002\.png: cannot decode"):
        dataset[2]
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=1)
    with pytest.raises(Exception, match=r"00000/img00000002\.png: cannot decode"):
        next(iter(loader))

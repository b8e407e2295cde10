"""CIFAR-100 from the official cifar-100-python.tar.gz (local or through Paddle's downloader), fine or coarse labels."""
from __future__ import annotations

from regbench.data.cifar import batch_arrays, download, label_names, official_splits, read_members
from regbench.data.splits import Split, Splits
from regbench.errors import UserError

# the official file, as paddle.vision.datasets.Cifar100 fetches it
URL = "https://dataset.bj.bcebos.com/cifar/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"  # the dataset authors' page
ARCHIVE = "cifar-100-python.tar.gz"
FOLDER = "cifar-100-python"
MEMBERS = ("train", "test", "meta")
# label kind -> (key in the train and test batches, key of the class names in meta)
LABELS = {"fine": (b"fine_labels", b"fine_label_names"), "coarse": (b"coarse_labels", b"coarse_label_names")}


def has_val(**load: object) -> bool:
    """CIFAR-100 has no val split of its own: its test set is val unless dataset.val_size holds one out."""
    return False


def load_cifar100(data_file: str | None, label: str) -> Splits:
    """The 50,000 training images as train and the official 10,000 test images as val (no separate test split),
    labelled with the 100 fine classes or the 20 coarse superclasses."""
    if label not in LABELS:
        raise UserError(f"dataset.label={label!r} is invalid: it must be fine or coarse")
    path = data_file if data_file is not None else download(URL, MD5, ARCHIVE, OFFICIAL_URL)
    members = read_members(path, FOLDER, MEMBERS, ARCHIVE)
    labels_key, names_key = LABELS[label]
    return official_splits(
        path,
        train=Split(*batch_arrays(path, f"{FOLDER}/train", members["train"], labels_key)),
        val=Split(*batch_arrays(path, f"{FOLDER}/test", members["test"], labels_key)),
        classes=label_names(path, f"{FOLDER}/meta", members["meta"], names_key),
    )

"""Image/mask datasets for the UNet++ experiments, with the paper's augmentations.

What the authors fed the network (paper.md section 5; `singan-polyp-aug-exp:
data/prepare_data.py`, `data/dataset.py`, pyra-pip `pyra_pytorch.py`):
- pairs read by the PYRA loader, resized to 256 x 256 with nearest-neighbour (grid 256 is
  the identity tiling), mask > 128;
- albumentations (< 1.0) pipeline ending in a 128 x 128 resize (the smp CamVid example);
- **no input normalisation**: `preprocessing_fn=None`, raw 0-255 float pixels;
- mask as one channel per class [0, 255]; we give the class index (0 background, 1 polyp),
  which `smp.losses.DiceLoss(mode="multiclass")` and our scores one-hot themselves.

Current albumentations (2.0.8) dropped the imgaug-backed `IAA*` transforms and the
single-purpose brightness/contrast ones. Each substitution below keeps the old defaults
(albumentations 0.4/0.5 signatures) and is listed in docs/deviations/segment.md:
- `ShiftScaleRotate(shift 0.1, scale 0.5, rotate 0, border 0, p 1)` -> `Affine(translate_percent
  (-0.1, 0.1), scale (0.5, 1.5), rotate 0, border_mode 0, p 1)` (ShiftScaleRotate is Affine
  underneath in 2.x and deprecated);
- `IAAAdditiveGaussianNoise(scale (0.01*255, 0.05*255), per_channel False)` -> `GaussNoise(
  std_range (0.01, 0.05), per_channel False)` (2.x gives the std as a fraction of 255);
- `IAAPerspective(scale (0.05, 0.1))` -> `Perspective(scale (0.05, 0.1), keep_size True)`;
- `IAASharpen(alpha (0.2, 0.5), lightness (0.5, 1.0))` -> `Sharpen(same)`;
- `RandomBrightness(limit 0.2)` -> `RandomBrightnessContrast(brightness 0.2, contrast 0)`;
- `RandomContrast(limit 0.2)` -> `RandomBrightnessContrast(brightness 0, contrast 0.2)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from singanseg.io import InputError, Pair, read_pair


def training_augmentation(img_size: int, seed: int | None = None) -> A.Compose:
    """The authors' `get_training_augmentation` with albumentations 2.0.8 equivalents."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(translate_percent=(-0.1, 0.1), scale=(0.5, 1.5), rotate=0, border_mode=cv2.BORDER_CONSTANT, p=1.0),
            A.PadIfNeeded(min_height=img_size, min_width=img_size, border_mode=cv2.BORDER_CONSTANT),
            A.Resize(height=img_size, width=img_size),
            A.GaussNoise(std_range=(0.01, 0.05), per_channel=False, p=0.2),
            A.Perspective(scale=(0.05, 0.1), keep_size=True, p=0.5),
            A.OneOf(
                [
                    A.CLAHE(p=1.0),
                    A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.0, p=1.0),
                    A.RandomGamma(p=1.0),
                ],
                p=0.9,
            ),
            A.OneOf(
                [
                    A.Sharpen(alpha=(0.2, 0.5), lightness=(0.5, 1.0), p=1.0),
                    A.Blur(blur_limit=3, p=1.0),
                    A.MotionBlur(blur_limit=3, p=1.0),
                ],
                p=0.9,
            ),
            A.OneOf(
                [
                    A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2, p=1.0),
                    A.HueSaturationValue(p=1.0),
                ],
                p=0.9,
            ),
        ],
        seed=seed,
    )


def validation_augmentation(img_size: int) -> A.Compose:
    """The authors' `get_validation_augmentation`: pad then resize, nothing random."""
    return A.Compose(
        [
            A.PadIfNeeded(min_height=img_size, min_width=img_size, border_mode=cv2.BORDER_CONSTANT),
            A.Resize(height=img_size, width=img_size),
        ]
    )


# decoded PYRA-resized pairs by (files, their sizes and mtimes, PYRA size); at most this many
# (256 px pairs: ~200 KB each, so ~0.8 GB at the bound)
_DECODED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_DECODED_MAX = 4000


def _cache_key(pair: Pair, pyra_size: int | None) -> tuple | None:
    """The cache key of one pair: a file rewritten in place (new size or mtime) is read again."""
    if not pyra_size:
        return None
    try:
        a, b = pair.image.stat(), pair.mask.stat()
    except OSError:
        return None  # read_pair names the missing file
    return (str(pair.image), a.st_size, a.st_mtime_ns, str(pair.mask), b.st_size, b.st_mtime_ns, pyra_size)


class PairDataset(Dataset):
    """(image float32 (3, S, S) in 0-255, mask int64 (S, S) in {0, 1}) from a list of pairs.

    `pyra_size`: the PYRA loader's nearest-neighbour resize to a square first (256 as the
    authors; None skips it). `name` appears in every error (the experiment and the role).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        img_size: int = 128,
        train: bool = False,
        pyra_size: int | None = 256,
        seed: int | None = None,
        name: str = "dataset",
    ):
        if not pairs:
            raise InputError(f"{name}: no image/mask pairs")
        self.pairs = list(pairs)
        self.img_size = img_size
        self.pyra_size = pyra_size
        self.name = name
        self.transform = training_augmentation(img_size, seed) if train else validation_augmentation(img_size)
        # Decoded, PYRA-resized pairs, kept after the first epoch: decoding a full-size PNG
        # cost more than the UNet++ step on it at the cpu profile's sizes. Kept only at the
        # fixed PYRA size (256 px: ~200 KB a pair), read-only so no transform can alter them,
        # and shared by every dataset of the process (_DECODED): a grid trains each test and
        # training image in many (experiment, fold, seed, protocol) runs.
        self._cache = _DECODED

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.pairs]

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Read pair `i` (validated: same size, binarised), PYRA-resized (cached at that size)."""
        key = _cache_key(self.pairs[i], self.pyra_size)
        if key is not None and key in self._cache:
            return self._cache[key]
        try:
            image, mask, _ = read_pair(self.pairs[i])
        except InputError as e:
            raise InputError(f"{self.name}: {e}") from None
        if self.pyra_size:
            s = self.pyra_size
            # pyra_pytorch: nearest-neighbour resize of image and mask to the grid size
            image = cv2.resize(image, (s, s), interpolation=cv2.INTER_NEAREST)
            mask = cv2.resize(mask, (s, s), interpolation=cv2.INTER_NEAREST)
            image.setflags(write=False)
            mask.setflags(write=False)
            if key is not None:
                if len(self._cache) >= _DECODED_MAX:  # a bound on memory: drop the oldest
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = (image, mask)
        return image, mask

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(i)
        out = self.transform(image=image, mask=(mask > 127).astype(np.uint8))
        x = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))).float()  # raw 0-255
        y = torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
        return x, y

"""Input augmentation for distillation.

With augmentation on, the teacher labels the *same* augmented view the student sees ("consistent
teaching", Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and consistent"),
so the student gets the teacher's answer on inputs that are not in the training set.
"""
import torch
import torch.nn.functional as F


def random_shift(x, max_shift: int, generator=None):
    """Translate each image by up to ``max_shift`` pixels in each direction, filling with zeros."""
    if max_shift <= 0 or x.dim() != 4:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])

import os

import pytest
import torch

# Tests share two cores with each other (pytest -n 2): one thread each keeps them from thrashing.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def digits8():
    from edgekd.data import load_dataset

    return load_dataset("digits8", seed=0)

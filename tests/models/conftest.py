import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Model tests use one intra-op thread: on a shared 2-core machine (and under pytest-xdist) two OpenMP threads
    contend with other processes and run up to 10x slower than one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

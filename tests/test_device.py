"""GPU readiness without a GPU: device choice, mixed-precision dtype and loss scaling, pinned
memory. CUDA is mocked where the machine has none; the real CUDA paths run on a GPU node."""

import pytest
import torch

from task2sim.train import common
from task2sim.train.pretrain import _loader


def test_auto_picks_cpu_without_cuda_and_cuda_with_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert common.resolve_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="device 'cuda' requested but torch sees no CUDA device"):
        common.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert common.resolve_device("auto").type == "cuda"
    assert common.resolve_device("cpu").type == "cpu"


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
@pytest.mark.parametrize("bf16,dtype,scaled", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_mixed_precision_on_gpu_only(monkeypatch, bf16, dtype, scaled):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert common.amp_dtype(cuda, True) is dtype
    assert common.amp_dtype(cuda, False) is None and common.amp_dtype(cpu, True) is None
    # loss scaling only where fp16 needs it (bf16 has fp32's range); never on CPU
    assert common.grad_scaler(cuda, True).is_enabled() is (scaled and torch.cuda.is_available())
    assert common.grad_scaler(cpu, True).is_enabled() is False


def test_autocast_is_a_no_op_on_cpu():
    with common.autocast_for(torch.device("cpu"), True):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype is torch.float32


def test_pinned_memory_follows_the_device():
    from task2sim.config import config_from_dict
    from task2sim.train.pretrain import PretrainConfig

    cfg = config_from_dict(PretrainConfig, {"batch_size": 2}, "pretrain", seed=0, device="cpu")
    ds = torch.utils.data.TensorDataset(torch.zeros(4, 1))
    assert _loader(ds, cfg, 0, pin=True).pin_memory is True
    assert _loader(ds, cfg, 0, pin=False).pin_memory is False

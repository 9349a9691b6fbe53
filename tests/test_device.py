"""GPU readiness without a GPU: device choice, mixed-precision dtype and loss scaling, pinned
memory. CUDA is mocked where the machine has none; the real CUDA paths run on a GPU node."""

import pytest
import torch

from task2sim.backbones import runtime
from task2sim.train.common import train_one_epoch
from task2sim.train.pretrain import _loader


def test_auto_picks_cpu_without_cuda_and_cuda_with_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="device 'cuda' requested but torch sees no CUDA device"):
        runtime.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto").type == "cuda"
    assert runtime.resolve_device("cpu").type == "cpu"


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
@pytest.mark.parametrize("bf16,dtype,scaled", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_mixed_precision_on_gpu(monkeypatch, bf16, dtype, scaled):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert runtime.amp_dtype(cuda, True) is dtype
    assert runtime.amp_dtype(cuda, False) is None
    # loss scaling only where fp16 needs it (bf16 has fp32's range)
    assert runtime.grad_scaler(cuda, True).is_enabled() is (scaled and torch.cuda.is_available())


@pytest.mark.parametrize("native", [True, False])
def test_cpu_autocasts_to_bf16_only_where_it_is_native(monkeypatch, native):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert runtime.amp_dtype(cpu, True) is (torch.bfloat16 if native else None)
    assert runtime.amp_dtype(cpu, False) is None
    assert runtime.grad_scaler(cpu, True).is_enabled() is False  # bf16 needs no loss scaling
    with runtime.autocast_for(cpu, True):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype is (torch.bfloat16 if native else torch.float32)
    with runtime.autocast_for(cpu, False):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.float32


def test_cpu_bf16_detection_reads_the_cpu_flags(tmp_path):
    for flags, native in [("fpu sse2 avx512f avx512_bf16", True), ("fpu amx_tile amx_bf16", True),
                          ("fpu sse2 avx512f avx512_vnni", False)]:
        info = tmp_path / f"cpuinfo-{len(flags)}"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert runtime.cpu_has_native_bf16(str(info)) is native, flags
    assert runtime.cpu_has_native_bf16(str(tmp_path / "missing")) is False


def test_training_batches_and_weights_are_channels_last():
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    model = runtime.to_device(net, torch.device("cpu"))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    model.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_one_epoch(model, [(x, y)], opt, nn.CrossEntropyLoss(), torch.device("cpu"), amp=False, progress=False)
    assert seen == [True]


def test_pinned_memory_follows_the_device():
    from task2sim.config import config_from_dict
    from task2sim.train.pretrain import PretrainConfig

    cfg = config_from_dict(PretrainConfig, {"batch_size": 2}, "pretrain", seed=0, device="cpu")
    ds = torch.utils.data.TensorDataset(torch.zeros(4, 1))
    assert _loader(ds, cfg, 0, pin=True).pin_memory is True
    assert _loader(ds, cfg, 0, pin=False).pin_memory is False

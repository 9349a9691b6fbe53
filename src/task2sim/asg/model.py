"""The ASG student: an ImageNet model, its frozen copy (the teacher), the frozen ImageNet head and
a new head for the synthetic classes; the proxy-guidance loss; layer groups (docs/asg.md).

Usage::

    net = ASGNet(imagenet_model("efficientnet_lite0"), n_classes=10)
    out = net(x)                                    # logits, imagenet_logits, teacher_logits
    loss, parts = asg_loss(out, y, kl_lambda=0.1)   # CE + lambda * KL(teacher || student-ImageNet)
    groups = layer_groups(net)                      # [(name, [params])], new head last

BatchNorm statistics stay frozen: ``ASGNet.train()`` keeps every submodule in eval mode (as the
reference does), so running means/variances never move and dropout is off; BN affine weights
still learn.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class ASGNet(nn.Module):
    """``student`` (a timm classifier with its 1000-class ImageNet head), ``teacher`` (a frozen
    deep copy) and ``new_head`` (Linear over the pooled features)."""

    def __init__(self, imagenet: nn.Module, n_classes: int):
        super().__init__()
        self.student = imagenet
        self.teacher = copy.deepcopy(imagenet)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        # The ImageNet head stays as it was: the KL term reads the student's features through it.
        for p in self.student.get_classifier().parameters():
            p.requires_grad_(False)
        self.new_head = nn.Linear(int(imagenet.num_features), n_classes)
        self.eval()

    def train(self, mode: bool = True) -> ASGNet:
        # Frozen BatchNorm statistics (and no dropout): the whole network always runs in eval mode.
        return super().train(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.student.forward_head(self.student.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor, teacher: bool = True) -> dict[str, torch.Tensor]:
        f = self.features(x)
        out = {"logits": self.new_head(f), "imagenet_logits": self.student.get_classifier()(f)}
        if teacher:
            with torch.no_grad():
                out["teacher_logits"] = self.teacher(x)
        return out

    def backbone_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.student.get_classifier().parameters()}
        return [p for p in self.student.parameters() if id(p) not in head]


def proxy_kl(imagenet_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher || p_student) over the 1000 ImageNet classes, averaged over the batch:
    sum_c p_t(c) (log p_t(c) - log p_s(c)) / B, with p_s the frozen ImageNet head on the
    student's features and p_t the teacher's output (the reference's direction)."""
    return F.kl_div(F.log_softmax(imagenet_logits, 1), F.log_softmax(teacher_logits, 1),
                    reduction="batchmean", log_target=True)


def asg_loss(out: dict[str, torch.Tensor], y: torch.Tensor, kl_lambda: float) -> tuple[torch.Tensor, dict]:
    """CE(new head, y) + kl_lambda * proxy_kl; returns (loss, {"ce", "kl", "loss"} floats)."""
    ce = F.cross_entropy(out["logits"], y)
    kl = proxy_kl(out["imagenet_logits"], out["teacher_logits"]) if "teacher_logits" in out else ce.new_zeros(())
    loss = ce + kl_lambda * kl if kl_lambda > 0 else ce
    ce_v, kl_v = float(ce.detach()), float(kl.detach())
    return loss, {"ce": ce_v, "kl": kl_v, "loss": ce_v + kl_lambda * kl_v}


def _downsamples(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and max(m.stride) > 1 for m in module.modules())


def _first_block(stage: nn.Module) -> nn.Module:
    return stage[0] if isinstance(stage, nn.Sequential) and len(stage) else stage


def backbone_groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """Parameter names of a timm backbone grouped at each change of resolution (the classifier
    left out): EfficientNet/MobileNet (conv_stem/blocks/conv_head): stem with the stride-1 stages
    after it, one group per downsampling stage (stride-1 stages join the group before them), head;
    ResNet: stem, layer1..4; other timm models: timm's coarse ``group_matcher``."""
    names = [n for n, p in model.named_parameters()]
    head = {n for n, _ in model.get_classifier().named_parameters(prefix=_classifier_prefix(model))}
    if hasattr(model, "conv_stem") and hasattr(model, "blocks") and hasattr(model, "conv_head"):
        groups: list[tuple[str, list[str]]] = [("stem", [])]
        res = 2
        where: dict[str, str] = {}
        for i, stage in enumerate(model.blocks):
            if i > 0 and _downsamples(_first_block(stage)):
                res *= 2
                groups.append((f"s{res}", []))
            where[f"blocks.{i}."] = groups[-1][0]
        groups.append(("head", []))
        by_name = dict(groups)
        for n in names:
            if n in head:
                continue
            if n.startswith("blocks."):
                key = ".".join(n.split(".")[:2]) + "."
                by_name[where[key]].append(n)
            elif n.startswith(("conv_head", "bn2")):
                by_name["head"].append(n)
            else:
                by_name["stem"].append(n)
        return [(g, by_name[g]) for g, _ in groups]
    if all(hasattr(model, f"layer{i}") for i in range(1, 5)):
        out = {g: [] for g in ("stem", "layer1", "layer2", "layer3", "layer4")}
        for n in names:
            if n in head:
                continue
            top = n.split(".")[0]
            out[top if top in out else "stem"].append(n)
        return list(out.items())
    from timm.models import group_parameters
    grouped = group_parameters(model, model.group_matcher(coarse=True))
    return [(f"g{k}", [n for n in v if n not in head]) for k, v in sorted(grouped.items())
            if any(n not in head for n in v)]


def _classifier_prefix(model: nn.Module) -> str:
    clf = model.get_classifier()
    for n, m in model.named_modules():
        if m is clf:
            return n
    raise ValueError(f"{type(model).__name__}: classifier module not found")


def layer_groups(net: ASGNet) -> list[tuple[str, list[nn.Parameter]]]:
    """Optimisation coordinates: the backbone groups (``backbone_groups``) then ``new_head``."""
    params = dict(net.student.named_parameters())
    groups = [(g, [params[n] for n in ns]) for g, ns in backbone_groups(net.student)]
    empty = [g for g, ps in groups if not ps]
    if empty:
        raise ValueError(f"layer group {empty[0]!r} of {type(net.student).__name__} has no parameters")
    return groups + [("new_head", list(net.new_head.parameters()))]

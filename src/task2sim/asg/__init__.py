"""ASG (Chen et al., ICML 2020): synthetic-to-real fine-tuning of a real ImageNet model with KL
proxy guidance and a learned layer-wise learning-rate policy (docs/asg.md).

Modules: ``model`` (student/teacher network, proxy KL, layer groups), ``policy`` (LSTM policy,
REINFORCE pieces), ``data`` (digit source render, class matching, probe photos), ``train``
(the five methods and the policy's training), ``report`` (tables, checkpoints, figures, summary).
"""

"""Networks and how to feed them images, one floor below every stage (issue 21): the stages
(pre-training, rewards, Task2Vec, ASG, evaluation, the final comparison) import from here and never
from each other for these.

- ``models``: timm factories, our small-image ResNet-18 variants, checkpoints that say what they hold;
- ``imagenet``: real ImageNet-pretrained networks that load offline;
- ``images``: the project's HDF5 image files as datasets, and their transforms;
- ``preprocess``: a network's input normalisation (the ImageNet statistics written once);
- ``runtime``: seeds, device choice, mixed precision, memory layout;
- ``features``: pooled features of a task's images, with their cache.
"""

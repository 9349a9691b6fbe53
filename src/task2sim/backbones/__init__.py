"""Networks and how to feed them images, one floor below every stage (issue 21's plan: model
factories, the device runtime, preprocessing from a checkpoint's ``pretrained_cfg`` and feature
extraction move here). So far: the input normalisation (``preprocess``)."""

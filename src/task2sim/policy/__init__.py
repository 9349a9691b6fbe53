"""Choosing a simulator configuration per task from its Task2Vec embedding, reading rewards from a
reward table (task x configuration -> 5-NN accuracy); no backbone is ever trained here.

- ``data``: the table as a matrix over the varied bits (``RewardMatrix``), Task2Vec loading;
- ``controller``: the Task2Sim paper's controller (MLP + one softmax head per bit, REINFORCE with a
  self-critical baseline, exploration noise and self-imitation), docs/policy.md;
- ``predictors``: every predictor behind one interface, by name (the controller, similarity-weighted
  transfer, a reward model, an ensemble, and the table baselines);
- ``evaluate``: the paper's seen/unseen split and leave-one-task-out, over seeds;
- ``plot``: the tasks x bits heatmap of P(bit = 1) (the paper's Fig. 5).
"""

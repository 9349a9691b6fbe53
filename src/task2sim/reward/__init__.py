"""Rewards: the weighted 5-NN score of a backbone on a task (``knn``), the task x configuration
table in our TSV and the published ``reward_db.json`` layouts (``table``), and its heatmap
(``plot``). The controller reads rewards from here and never needs the training code."""

# Policy's input functions (rules/policy.smk includes this file;
# Snakemake's linter keeps functions out of files with rules).


def policy_unseen_tasks():
    """Unseen tasks of the reward table: scored by the policy stage. Tasks outside the table
    (reward: false) get their prediction from the saved policy instead (final_select), so
    adding one refits nothing."""
    return [t for t in unseen_tasks() if t in reward_tasks()]


def policy_task2vec_files(wildcards):
    """The reward table's tasks' Task2Vec: seen ones train the predictors, unseen ones get predictions."""
    return expand("results/task2vec/{task}.npz", task=reward_tasks())

"""Optuna searches: search space, storage, study, objective, worker processes, the coordinator."""

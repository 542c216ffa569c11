"""The reusable forecasting core: params, data, framing, models, training, evaluation, checkpoints.

Nothing here imports MLflow, Optuna or matplotlib, nor any other sinernn package (tests/test_layers.py).
"""

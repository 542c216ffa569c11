"""The edge that talks to MLflow: runs, the model registry and its champion gate, plots."""

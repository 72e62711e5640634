"""An Optuna sweeper for Hydra whose workers share one study: hydra-optuna-sweeper's keys and search-space
syntax on Optuna 5, trials run asynchronously (a new one starts as soon as any ends), pruning reaches
every job, and heartbeats, early stopping and MLflow parent runs hold across processes and machines."""

__version__ = "0.1.0"

"""colorize's Optuna sweeper for Hydra: hydra-optuna-sweeper's keys and syntax on current Optuna."""

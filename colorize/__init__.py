"""colorize: grayscale-to-colour autoencoders, configured by Hydra, swept by Optuna, tracked by MLflow."""

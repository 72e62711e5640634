"""The code of the model each run logs to MLflow, as MLflow's "models from code" loads it: MLflow runs
this file where the model is loaded (`mlflow models serve`, mlflow.pyfunc.load_model), with the
model's own copy of colorize/photo.py beside it, so only torch, numpy and mlflow are needed there,
never colorize. colorize never imports it (tracking.py names it as a file).

Input: uint8 pixels, one image (H, W) gray or (H, W, 3) RGB, or a batch (N, H, W) or (N, H, W, 3) of
one size; any size. Output: the colourised uint8 RGB, (H, W, 3) or (N, H, W, 3): what
`python -m colorize.colorize` writes for the same photo.
"""

import json
import warnings

import mlflow
import photo  # the model's code, colorize/photo.py
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

# MLflow asks for type hints on predict as it defines the class, under a warnings filter of its own
# that none here can override: the warning is caught. model_input has no hint: MLflow would take it
# for an input schema, and this model takes several forms that no one schema describes.
with warnings.catch_warnings(record=True):

    class ColourisedPhotos(mlflow.pyfunc.PythonModel):
        def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
            # A torch.export program: its weights and graph, no pickled code (torch.export.load).
            self.program = torch.export.load(context.artifacts["program"]).module()
            self.settings = json.loads(open(context.artifacts["settings"]).read())  # size, fixed, resolution

        def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input, params: dict | None = None):  # noqa: ANN001, ANN201
            try:
                return photo.colourise(
                    model_input,
                    self.program,
                    self.settings["size"],
                    self.settings["fixed"],
                    self.settings["resolution"],
                    torch.device("cpu"),
                )
            except ValueError as error:  # a short line naming what is expected: HTTP 400, not a dump of the array
                raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None


mlflow.models.set_model(ColourisedPhotos())

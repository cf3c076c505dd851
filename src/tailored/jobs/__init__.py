"""Jobs that change what serves: training and registering model versions."""

from tailored.jobs.train import TrainedModel, register_model, train_model

__all__ = ["TrainedModel", "register_model", "train_model"]

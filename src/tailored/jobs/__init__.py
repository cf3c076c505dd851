"""Jobs that change what serves: training and registering model versions."""

from tailored.jobs.train import TrainedModel, train_model

__all__ = ["TrainedModel", "train_model"]

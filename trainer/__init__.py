"""The trainer: proves a built mixture on a small Llama-style model.

Entry points: ``trainer.spec.load_train_spec`` / ``TrainSpec`` (contract 4) and
``trainer.train.run_training``. Nothing is re-exported here, so that reading a spec does not
import torch.
"""

"""Evaluation: metrics of a model version against a dataset version, stored in the catalog.

result = evaluate_model(workspace, catalog, "digits", dataset, config.evaluate)
result.metrics["heldout_elbo"], result.metrics["conditional_accuracy"]
"""

from genloop.evaluate.image import EvaluationResult, evaluate_model

__all__ = ["EvaluationResult", "evaluate_model"]

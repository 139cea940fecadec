"""Evaluation: metrics of a model version against a dataset version, stored in the catalog.

result = evaluate_model(workspace, catalog, "digits", dataset, config.evaluate)
result.metrics["fd"], result.metrics["fd_real_floor"]            (vae, gan, ddpm)
result.metrics["heldout_elbo"], result.metrics["conditional_accuracy"]   (vae)
result.metrics["bits_per_character"], result.metrics["verbatim_max_longest_match"]  (gpt, hf-causal-lm)
result.metrics["pitch_class_tv"]                                  (music)
"""

from genloop.evaluate.dispatch import EvaluationResult, evaluate_model, evaluator_for, summary_lines

__all__ = ["EvaluationResult", "evaluate_model", "evaluator_for", "summary_lines"]

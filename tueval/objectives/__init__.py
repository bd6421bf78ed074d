"""Unlearning objectives (token-weighted): the ``OBJECTIVES`` registry and its built-in entries.

Usage: ``obj = make_objective("npo", {"beta": 0.1})``; ``out = obj(model, forget_batch, retain_batch, weights,
ref_model)`` -> ``LossOutput(total, forget, retain, extras)``; ``obj.get_params()`` for the run spec.
"""
from .base import (KL_POSITIONS, OBJECTIVES, ForwardOut, LossOutput, Objective, check_weights, gt_logits,
                   make_objective, masked_sum, model_forward, nll_token_mean, sequence_weighted_mean,
                   uniform_weights, weighted_mean)
from .ga import GradAscent, GradDiff
from .idkpo import attach_idk_batch, build_idk_batch, load_idk_answers, questions_from_batch, IdkPO
from .npo import NPO
from .rmu import RMU, layer_activations, rmu_trainable_parameters
from .simnpo import SimNPO
from .tpo import TPO

__all__ = ["KL_POSITIONS", "OBJECTIVES", "sequence_weighted_mean", "ForwardOut", "LossOutput", "Objective", "check_weights", "gt_logits",
           "make_objective", "masked_sum", "model_forward", "nll_token_mean", "uniform_weights", "weighted_mean",
           "GradAscent", "GradDiff", "IdkPO", "NPO", "RMU", "layer_activations",
           "rmu_trainable_parameters", "SimNPO", "TPO", "attach_idk_batch", "build_idk_batch",
           "load_idk_answers", "questions_from_batch"]

"""Token scorers: the ``SCORERS`` registry (entry-point group ``tueval.scorers``), the built-in families and
user plugins. Build one with ``make_scorer(name, params)``; check a plugin with ``check_scorer``."""
from .base import (SCORERS, Scorer, ScoringContext, current_outputs, gather_answer_scores, minmax_per_sequence,
                   on_answers, split_answer_scores)
from .tokenunlearn import TokenUnlearnScorer, copied_from_question, knowledge_signal, masked_logprobs, question_mask
from .etw import ETWScorer, ETWStaticScorer
from .atwu import ATWUSatScorer, ATWUScorer, weight_stats
from .tif import TIFAnnotation, TIFScorer, tif_annotations
from .probability import SatImpScorer, TNPOScorer, WGAScorer
from .control_scorers import AntiScorer, OracleScorer, RandomScorer, UniformScorer
from .plugins import FunctionScorer, check_scorer, make_scorer

__all__ = ["SCORERS", "Scorer", "ScoringContext", "current_outputs", "minmax_per_sequence", "on_answers",
           "split_answer_scores", "gather_answer_scores",
           "TokenUnlearnScorer", "copied_from_question", "knowledge_signal", "masked_logprobs", "question_mask", "ETWScorer",
           "ETWStaticScorer", "ATWUScorer", "ATWUSatScorer", "weight_stats", "TIFAnnotation", "TIFScorer",
           "tif_annotations",
           "SatImpScorer", "TNPOScorer", "WGAScorer", "AntiScorer", "OracleScorer", "RandomScorer",
           "UniformScorer", "FunctionScorer", "check_scorer", "make_scorer"]

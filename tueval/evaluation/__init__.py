"""TOFU-faithful evaluation: per-example likelihoods and generations, TOFU aggregation, MIA, eval-log IO.

Modules (imported on demand so that log-only tools such as ``tofu-stats`` do not load torch):
- ``likelihood``: summed/average answer NLL, token counts, teacher-forced (fact-)token accuracy; ``score_sets``
  scores every answer variant of many sets in one shared-prefix pass (``prefix``), on memoised token ids
  (``encoding``).
- ``prefix``: each prompt encoded once (KV cache), its continuations scored from it.
- ``encoding``: prompt and answer token ids, memoised per tokenizer.
- ``generation``: batched greedy generation (KV cache, finished rows leave the batch) and ROUGE recall.
- ``tofu``: ``evaluate_examples`` -> one row per example with TOFU's eval-log fields.
- ``tofu_aggregate``: forget quality, the 9 model-utility components, model utility, forget aggregates.
- ``tofu_bootstrap``: vectorised percentile CIs of those aggregates over examples.
- ``eval_log``: read/write TOFU's ``eval_log_aggregated.json``.
- ``mia``: LOSS, ZLib, Min-K%, Min-K%++ scores, AUC, privleak.
- ``summary``: ``summarise`` (shared keys of ``evaluate --json`` and ``tofu-stats --json``).
- ``tofu_stats``: ``tofu_stats``, ``format_tofu_stats``, ``tofu_stats_main``.
- ``lmeval``: the lm-eval bridge (offline multiple-choice tasks).
"""

"""tueval: tests token-level LLM-unlearning claims against controls, offline."""
import os as _os

# Nothing in tueval may reach a model or dataset hub: switch every client offline before it is imported.
for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    _os.environ.setdefault(_k, "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# transformers' "Loading weights" bar fires on every model load (hundreds per demo, each in milliseconds) and buries
# tueval's own progress bars; set HF_HUB_DISABLE_PROGRESS_BARS=0 to see it again
_os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

__version__ = "0.1.0"

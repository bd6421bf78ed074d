"""The tiny Llama-style recipe (hidden 128, 2 layers) used for the embedded default."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class TinyModelConfig:
    """Architecture of the tiny model (feasibility: 0.66 M parameters with a 1024-token vocabulary)."""

    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 256
    attn_implementation: str = "eager"

    def to_dict(self) -> dict:
        return asdict(self)


def llama_config(tokenizer, cfg: TinyModelConfig = TinyModelConfig()) -> LlamaConfig:
    """A LlamaConfig for ``tokenizer``'s vocabulary and special tokens."""
    c = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    c._attn_implementation = cfg.attn_implementation
    return c


def build_model(tokenizer, cfg: TinyModelConfig = TinyModelConfig(), seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised tiny Llama, seeded."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(tokenizer, cfg))
    model.config._attn_implementation = cfg.attn_implementation
    return model

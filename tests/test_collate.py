import torch

from tueval.data.align import span_token_mask
from tueval.data.collate import collate
from tueval.data.schema import Span


def test_batch_contract(toy_batch, tiny_tokenizer, toy_examples):
    b = toy_batch
    B, T = b.input_ids.shape
    assert b.labels.shape == b.answer_mask.shape == b.gt_mask.shape == (B, T)
    assert torch.equal(b.answer_mask, b.labels != -100)
    assert not (b.gt_mask & ~b.answer_mask).any(), "gt tokens must be answer tokens"
    assert (b.input_ids[:, 0] == tiny_tokenizer.bos_token_id).all()
    # every answer ends with EOS, which is supervised
    last = b.attention_mask.sum(1) - 1
    assert (b.input_ids[torch.arange(B), last] == tiny_tokenizer.eos_token_id).all()
    assert (b.labels[b.attention_mask == 0] == -100).all()
    assert b.example_ids == [e.id for e in toy_examples]


def test_gt_tokens_decode_to_span_text(toy_batch, tiny_tokenizer, toy_examples):
    for i, e in enumerate(toy_examples):
        toks = toy_batch.input_ids[i][toy_batch.gt_mask[i]]
        text = tiny_tokenizer.decode(toks)
        for s in e.spans:
            assert e.answer[s.start:s.end] in text


def test_overlap_rules():
    offs = [[0, 3], [3, 7], [7, 8]]
    sp = [Span(2, 4, "x")]
    assert span_token_mask(offs, sp, "any").tolist() == [True, True, False]
    assert span_token_mask(offs, sp, "majority").tolist() == [False, False, False]
    assert span_token_mask(offs, [Span(1, 6, "x")], "majority").tolist() == [True, True, False]

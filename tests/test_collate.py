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


# ---------------------------------------------------------------------------------------- prompt format, special tokens
def _chat_tokenizer(tiny_tokenizer):
    """The tiny tokenizer with ChatML markup as special tokens and a chat template."""
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tok


def test_default_format_and_include_policy_keep_the_embedded_batch(toy_examples, tiny_tokenizer, toy_batch):
    from tueval.data.format import DEFAULT_FORMAT, PromptFormat, set_format

    import copy

    tok = set_format(copy.copy(tiny_tokenizer), PromptFormat())
    b = collate(toy_examples, tok)
    assert DEFAULT_FORMAT == PromptFormat()
    for k in ("input_ids", "attention_mask", "labels", "answer_mask", "gt_mask"):
        assert torch.equal(getattr(b, k), getattr(toy_batch, k))


def test_exclude_policy_drops_eos_from_the_answer_mask_only(toy_examples, tiny_tokenizer, toy_batch):
    b = collate(toy_examples, tiny_tokenizer, special_tokens="exclude")
    eos = tiny_tokenizer.eos_token_id
    assert torch.equal(b.labels, toy_batch.labels), "labels keep the EOS (losses may still be computed on it)"
    assert not (b.answer_mask & (b.input_ids == eos)).any()
    assert torch.equal(b.answer_mask, toy_batch.answer_mask & (toy_batch.input_ids != eos))
    assert torch.equal(b.gt_mask, toy_batch.gt_mask)


def test_chat_format_wraps_questions_and_excludes_end_of_turn(toy_examples, tiny_tokenizer):
    from tueval.data.format import PromptFormat, end_ids, set_format

    tok = set_format(_chat_tokenizer(tiny_tokenizer), PromptFormat(chat=True, special_tokens="exclude"))
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_ids(tok) == [end]
    b = collate(toy_examples[:2], tok)
    start = tok.convert_tokens_to_ids("<|im_start|>")
    for i, e in enumerate(toy_examples[:2]):
        ids = b.input_ids[i][b.attention_mask[i].bool()].tolist()
        assert ids[0] == start and ids[-1] == end
        text = tok.decode(b.input_ids[i][b.answer_mask[i]])
        assert text.strip() == e.answer, "the answer mask holds the answer's tokens, no markup"
        assert tok.decode(b.input_ids[i][b.gt_mask[i]]).strip()
    inc = collate(toy_examples[:2], set_format(_chat_tokenizer(tiny_tokenizer), PromptFormat(chat=True)))
    assert (inc.answer_mask & (inc.input_ids == end)).sum() == 2, "include: the end-of-turn token is scored"


def test_raw_text_examples_have_no_template(tiny_tokenizer):
    from tueval.data.schema import Example

    e = Example(id="t", subject="", question="", answer="Lisbon is a city")
    b = collate([e], tiny_tokenizer)
    assert b.input_ids[0, 0] == tiny_tokenizer.bos_token_id and int(b.prompt_lengths[0]) == 1
    assert tiny_tokenizer.decode(b.input_ids[0][b.answer_mask[0]]).replace("</s>", "").strip() == e.answer


def test_chat_batches_mark_the_question_tokens(toy_examples, tiny_tokenizer, toy_batch):
    from tueval.data.format import PromptFormat, set_format

    assert "question_mask" not in toy_batch.extras, "the default format: scorers locate the question themselves"
    tok = set_format(_chat_tokenizer(tiny_tokenizer), PromptFormat(chat=True))
    b = collate(toy_examples[:3], tok)
    qm = b.extras["question_mask"]
    for i, e in enumerate(toy_examples[:3]):
        assert tok.decode(b.input_ids[i][qm[i]]).strip() == e.question
    assert b.select([1]).extras["question_mask"].shape == (1, b.input_ids.shape[1])

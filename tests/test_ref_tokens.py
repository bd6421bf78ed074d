"""The reference's per-token values stored across steps (tueval.ref_tokens): the same training as a reference
forward every step, with one reference forward per forget example."""
import pytest
import torch

from tueval import ref_tokens
from tueval.data.collate import Batch
from tueval.spec import RunSpec


def _trainer(wd, objective, **kw):
    from tueval.training import Trainer
    from tueval.unlearn import resolve

    spec = RunSpec(**{"objective": objective, "scorer": "tokenunlearn", "mode": "hard", "ratio": 0.3, "seed": 2,
                      "lr": 1e-3, "epochs": 2, "batch_size": 16, "generate": False, **kw})
    r = resolve(spec, wd)
    torch.manual_seed(spec.seed)
    return Trainer.build(spec, wd, *r["_objects"], r["spec"]["forget_split"])


def _count_forwards(model) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _train(wd, objective, cache: bool, monkeypatch, **kw):
    monkeypatch.setattr(ref_tokens, "CACHE", cache)
    t = _trainer(wd, objective, **kw)
    calls = _count_forwards(t.ref_model)
    log = [t(s) for s in range(t.total_steps)]
    return t, log, calls[0]


@pytest.mark.parametrize("objective,control", [("npo", None), ("tpo", None), ("idkpo", None),
                                               ("npo", "step_matched")])
def test_stored_reference_values_train_as_a_forward_every_step(small_workdir, monkeypatch, objective, control):
    """Two epochs with the stored values and with a reference forward every step: the same parameters and log
    rows (to 1e-6; the same numbers where a row's forward does not depend on its batch-mates), and the reference
    runs on the forget examples once (IdkPO: plus its refusal batches every step)."""
    old, log_old, n_old = _train(small_workdir, objective, False, monkeypatch, control=control)
    new, log_new, n_new = _train(small_workdir, objective, True, monkeypatch, control=control)
    assert old.ref_store is None and new.ref_store is not None and bool(new.ref_store.seen.all())
    for a, b in zip(old.model.parameters(), new.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    assert [r.keys() for r in log_new] == [r.keys() for r in log_old]
    for ro, rn in zip(log_old, log_new):
        for k in ro:
            assert rn[k] == pytest.approx(ro[k], rel=1e-5, abs=1e-6), k
    per_step = 2 if objective == "idkpo" else 1  # IdkPO's refusal side is drawn anew every step
    matched = 2 if control == "step_matched" else 1  # the method's loss on the same batch read the reference too
    assert n_old == old.total_steps * (per_step - 1 + matched)
    assert n_new == old.total_steps * (per_step - 1) + old.steps_per_epoch


def test_store_returns_each_rows_own_values_whatever_its_batch(small_workdir):
    """Values stored from one batch, read in another of other rows and width: each row's reference values, as
    a forward of the new batch gives them, at every answer position."""
    t = _trainer(small_workdir, "npo")
    store = ref_tokens.RefStore("logp", tuple(t.forget.input_ids.shape), t.forget.input_ids.device)
    first = torch.arange(0, 12)
    store(t.ref_model, first, Batch.trim(t.forget.select(first)))
    mixed = torch.tensor([3, 20, 7, 31, 0])  # three stored rows, two new ones
    b = Batch.trim(t.forget.select(mixed))
    got = store(t.ref_model, mixed, b).logp
    want = ref_tokens.reference_values(t.ref_model, b, "logp")
    m = b.answer_mask.bool()
    torch.testing.assert_close(got[m], want[m], rtol=1e-6, atol=1e-6)
    assert got.shape == want.shape and bool(store.seen[mixed].all()) and int(store.seen.sum()) == 14
    with pytest.raises(ValueError, match="ref_tokens"):
        ref_tokens.RefStore("logits", (2, 3), "cpu")

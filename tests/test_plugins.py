"""User scorer plugins: ``module:function`` wrapping and the conformance check's messages."""
import textwrap

import pytest
import torch

from tueval.errors import SpecError
from tueval.scoring import FunctionScorer, Scorer, check_scorer, make_scorer

PLUGIN = textwrap.dedent('''
    import torch
    from tueval.scoring import Scorer

    _calls = [0]

    def good(model, batch):
        return batch.answer_mask.float() * torch.rand(batch.answer_mask.shape)

    def with_context(model, batch, context):
        return batch.gt_mask.float() + context.step

    def wrong_shape(model, batch):
        return torch.ones(batch.input_ids.shape[0])

    def not_a_tensor(model, batch):
        return [[1.0]]

    def nan_scores(model, batch):
        s = batch.answer_mask.float()
        s[0, batch.prompt_lengths[0]] = float("nan")
        return s

    def inf_scores(model, batch):
        return batch.answer_mask.float() / 0.0

    def crashes(model, batch):
        raise KeyError("no such field")

    def flaky(model, batch):
        _calls[0] += 1
        return batch.answer_mask.float() * _calls[0]

    class Mine(Scorer):
        name = "mine"
        static = True
        def __init__(self, scale: float = 2.0):
            self.scale = scale
        def score(self, model, batch, context=None):
            return batch.answer_mask.float() * self.scale
''')


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_scorers.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_scorers"


def test_function_plugin_is_wrapped_and_conforms(plugin, tiny_model, toy_batch):
    sc = make_scorer(f"{plugin}:good")
    assert isinstance(sc, FunctionScorer) and sc.name == f"{plugin}:good"
    check_scorer(sc, tiny_model, toy_batch, seed=3)  # uses torch's global RNG: deterministic under the seed
    assert sc.score(tiny_model, toy_batch).shape == toy_batch.input_ids.shape
    assert make_scorer(f"{plugin}:good", {"static": True}).static
    assert make_scorer(f"{plugin}:good").get_params() == {"fn": f"{plugin}:good", "static": False, "cost": 1.0,
                                                         "needs_ref_model": False, "needs_retain_model": False}
    assert make_scorer(f"{plugin}:good", {"needs_ref_model": True}).needs_ref_model
    ctx_sc = make_scorer(f"{plugin}:with_context")
    check_scorer(ctx_sc, tiny_model, toy_batch)
    from tueval.scoring import ScoringContext

    assert torch.equal(ctx_sc.score(tiny_model, toy_batch, ScoringContext(step=2)), toy_batch.gt_mask.float() + 2)


def test_scorer_class_plugin_takes_settings(plugin, tiny_model, toy_batch):
    sc = make_scorer(f"{plugin}:Mine", {"scale": 3.0})
    assert isinstance(sc, Scorer) and sc.static and sc.get_params() == {"scale": 3.0}
    check_scorer(sc, tiny_model, toy_batch)
    with pytest.raises(SpecError, match="unknown setting"):
        make_scorer(f"{plugin}:Mine", {"size": 1})
    with pytest.raises(SpecError, match="plain function"):
        make_scorer(f"{plugin}:good", {"scale": 1})


@pytest.mark.parametrize("fn,fault", [
    ("wrong_shape", r"returned shape \[8\]; expected \[B, T\]"),
    ("not_a_tensor", "returned list; expected a torch.Tensor"),
    ("nan_scores", r"non-finite values \(NaN\) on 1 of"),
    ("inf_scores", r"non-finite values \(inf\)"),
    ("crashes", "raised KeyError: 'no such field'"),
    ("flaky", "non-deterministic"),
])
def test_check_scorer_names_plugin_and_fault(fn, fault, plugin, tiny_model, toy_batch):
    with pytest.raises(SpecError, match=fault) as e:
        check_scorer(make_scorer(f"{plugin}:{fn}"), tiny_model, toy_batch)
    assert f"'{plugin}:{fn}'" in str(e.value)


def test_bad_plugin_references(plugin):
    with pytest.raises(SpecError, match="cannot import module"):
        make_scorer("no_such_module_xyz:fn")
    with pytest.raises(SpecError, match="has no attribute"):
        make_scorer(f"{plugin}:missing")
    with pytest.raises(SpecError, match="Valid names: .*tokenunlearn"):
        make_scorer("not_a_scorer")


# ------------------------------------------------------------------------------------ one base, Registry.build
def test_scorers_and_objectives_share_one_settings_base():
    from tueval.objectives import GradDiff, Objective
    from tueval.params import Configurable
    from tueval.scoring import ATWUSatScorer

    assert issubclass(Scorer, Configurable) and issubclass(Objective, Configurable)
    assert ATWUSatScorer._param_names()[:2] == ["beta1", "every"]
    assert GradDiff(alpha=0.5).get_params() == {"gamma": 1.0, "alpha": 0.5, "retain_loss": "nll",
                                                "normaliser": "weight_sum"}


def test_registry_build_classes_instances_and_factories():
    from tueval.objectives import GradAscent, Objective
    from tueval.registry import Registry

    reg = Registry("thing")
    reg.register("cls", GradAscent)
    reg.register("inst", GradAscent(gamma=2.0))
    reg.register("factory", lambda **kw: GradAscent(**kw))
    reg.register("wrong", lambda **kw: object())
    assert reg.build("cls", {"gamma": 3.0}, Objective).gamma == 3.0
    with pytest.raises(SpecError, match="thing 'cls': unknown setting.*beta.*Valid: gamma"):
        reg.build("cls", {"beta": 1}, Objective)
    assert reg.build("inst", {"gamma": 2.0}, Objective) is reg.get("inst"), "its own settings are no change"
    with pytest.raises(SpecError, match="is an instance; it takes no settings"):
        reg.build("inst", {"gamma": 1.0}, Objective)
    assert reg.build("factory", {"alpha": 0.0}, Objective).alpha == 0.0
    with pytest.raises(SpecError, match="did not build an instance of Objective"):
        reg.build("wrong", {}, Objective)


def test_the_score_stage_does_not_import_the_loss_stage():
    import subprocess
    import sys

    code = "import sys, tueval.scoring; print(any(m.startswith('tueval.objectives') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

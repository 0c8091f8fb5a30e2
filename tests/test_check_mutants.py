"""The diagnosis-accuracy figure of rnnkit check: every mutant of tests/check_programs.py (one
mistake each, in every one of the ten functions, covering every mistake the issue lists) fails
with the right first wrong quantity and time step; the likely cause is right for at least 80%
of them (``python tests/check_programs.py`` prints the table and the figures)."""

import pytest
from check_programs import CORRECT, EINSUM, EINSUM_MUTANTS, MUTANTS, measure, mutant_source, namespace

from rnnkit.check import CATALOGUE, FUNCTION_NAMES, check_namespace

# The mistakes the issue names, and the catalogue entries that stand for them.
ISSUE_CATALOGUE = {
    "sigmoid and tanh swapped on a gate": ("lstm.act_f", "lstm.act_c", "lstm.act_o", "rnn.sigmoid"),
    "a missing bias": ("rnn.no_ba", "rnn.no_by", "lstm.no_bi"),
    "a gate using another gate's weights or bias": ("lstm.o_Wf", "lstm.i_bf"),
    "[xt; a_prev] instead of [a_prev; xt]": ("lstm.concat_x_first",),
    "c_prev where c_next belongs": ("lstm.a_from_c_prev",),
    "a missing tanh on c_next": ("lstm.no_tanh_c",),
    "softmax over the wrong axis or the whole array": ("softmax.axis1", "softmax.whole"),
    "softmax without subtracting the maximum": ("softmax.no_max",),
    "a0 reused at every step": ("seq.a0_every_step",),
    "off-by-one loops": ("seq.skip_last", "seq.skip_first"),
    "the time axis reversed": ("seq.reversed", "seq.x_reversed"),
    "sizes hard-coded to the example": ("hardcoded",),
    "outputs never stored": ("seq.a_not_stored", "seq.y_not_stored", "seq.c_not_stored"),
    "inputs modified in place": ("inplace",),
    "a sign error in sigmoid": ("sigmoid.sign",),
    "a missing (1 - a^2) factor": ("rnnb.no_tanh_grad",),
    "the carried gradient not added back": ("seqb.no_carry", "seqb.no_carry_c"),
    "gradients not summed over time": ("seqb.not_summed",),
}


@pytest.fixture(scope="module")
def measured():
    return measure()


def test_at_least_40_mutants_cover_every_function_and_every_listed_mistake():
    assert len(MUTANTS) >= 40
    assert {m.function for m in MUTANTS.values()} == set(FUNCTION_NAMES)
    causes = {m.cause for m in MUTANTS.values()}
    for mistake, ids in ISSUE_CATALOGUE.items():
        assert set(ids) <= set(CATALOGUE), mistake
        assert set(ids) <= causes, f"no mutant for {mistake!r}"
    backward = {"rnn_cell_backward", "rnn_backward", "lstm_cell_backward", "lstm_backward"}
    for f in backward:
        assert sum(m.function == f for m in MUTANTS.values()) >= 4, f


def test_every_mutant_edit_applies_and_correct_code_is_untouched():
    for label, mut in MUTANTS.items():
        assert mutant_source(mut) != CORRECT, label


@pytest.mark.slow
def test_each_mutant_fails_at_the_right_quantity_and_time_step(measured):
    rows, _ = measured
    wrong = [(r["mutant"], r["status"], r["first_wrong"], r["time_step"]) for r in rows
             if r["status"] not in ("fail", "error") or not r["where_ok"]]
    assert not wrong


@pytest.mark.slow
def test_likely_cause_is_right_for_at_least_80_percent(measured):
    rows, figures = measured
    print(f"\nrnnkit check on {figures['mutants']} mutants: first wrong quantity right "
          f"{figures['first_wrong_accuracy']:.0%}, likely cause right {figures['cause_accuracy']:.0%}")
    assert figures["cause_accuracy"] >= 0.8, [(r["mutant"], r["cause"]) for r in rows if not r["cause_ok"]]


@pytest.mark.slow
def test_mutants_of_the_einsum_style_code_are_found_the_same_way():
    rows, figures = measure(EINSUM_MUTANTS, EINSUM)
    assert all(r["status"] in ("fail", "error") and r["where_ok"] for r in rows), \
        [(r["mutant"], r["first_wrong"], r["time_step"]) for r in rows if not r["where_ok"]]
    assert figures["cause_accuracy"] >= 0.8


@pytest.mark.parametrize("edit, function, first_wrong, time_step", [
    # mistakes outside the catalogue: no cause is claimed, the place is still right
    (("da0 = da_prevt\n    return {\"dx\": dx, \"da0\": da0, \"dWax\"",
      "da0 = 2 * da_prevt\n    return {\"dx\": dx, \"da0\": da0, \"dWax\""), "rnn_backward", "da0", None),
    (("c_next = ft * c_prev + it * cct", "c_next = ft * c_prev + it * cct + 0.1"), "lstm_cell", "c_next", None),
    (("        a_next, yt_pred, cache = rnn_cell(xt, a_next, parameters)",
      "        a_next, yt_pred, cache = rnn_cell(xt, a_next, parameters)\n        a_next = a_next * 0.9"),
     "rnn_forward", "a", 0),
])
def test_uncatalogued_mistakes_get_the_place_and_no_invented_cause(edit, function, first_wrong, time_step):
    assert edit[0] in CORRECT
    res = check_namespace(namespace(CORRECT.replace(*edit)), [function])[function]
    assert (res.status, res.first_wrong, res.time_step, res.cause) == ("fail", first_wrong, time_step, None)

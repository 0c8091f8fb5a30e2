"""rnnkit.check in-process: correct code in three styles passes (rnnkit.scratch, the course's
np.dot style, an einsum style written here), the seed notebook's code passes except its
unfinished lstm_forward, the mistake model without a mistake is rnnkit.scratch, and the
report's parts (helpers that are wrong, backward functions on a wrong forward, layouts,
robustness warnings, in-place changes, the JSON shape, HTML)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from check_programs import CORRECT, EINSUM, MUTANTS, mutant_source, namespace

from rnnkit import scratch
from rnnkit.check import CATALOGUE, FUNCTION_NAMES, check, check_namespace, model
from rnnkit.check.cases import INFO, cases_for, forward_cache, reference, reference_forward
from rnnkit.check.runner import decode, encode
from rnnkit.errors import ConfigError

DATA = Path(__file__).resolve().parent / "data"
SEED = (DATA / "seed_notebook.py").read_text(encoding="utf-8")
SEED_LSTM_FORWARD_DONE = SEED.replace("    a_next = a0\n\n# %%", """    a_next = a0
    c_next = np.zeros([n_a, m])
    for t in range(T_x):
        a_next, c_next, yt, cache = lstm_cell(x[:, :, t], a_next, c_next, parameters)
        a[:, :, t] = a_next
        c[:, :, t] = c_next
        y[:, :, t] = yt
        caches.append(cache)
    caches = (caches, x)
    return a, y, c, caches

# %%""")


def seed_namespace(source=SEED):
    """Run the seed's cells one by one, as a notebook does (a failing cell stops only itself)."""
    ns = {"__name__": "__main__"}
    for cell in source.split("# %%\n")[1:]:
        try:
            exec(compile(cell, "<seed cell>", "exec"), ns)
        except TypeError:
            pass                                  # the last cell: lstm_forward returns None
    return ns


# ----------------------------------------------------------------------------------------
# Correct code passes
# ----------------------------------------------------------------------------------------

def test_rnnkit_scratch_passes_every_function():
    report = check(scratch)
    assert [f.name for f in report.functions] == list(FUNCTION_NAMES)
    assert report.summary == {"pass": 10, "fail": 0, "error": 0, "missing": 0}
    assert report.exit_code() == 0


@pytest.mark.parametrize("style", ["course np.dot", "einsum"])
def test_independent_correct_implementations_pass(style):
    report = check_namespace(namespace(CORRECT if style == "course np.dot" else EINSUM))
    assert report.summary["pass"] == 10, report.text()
    assert not any(f.message for f in report.functions)


def test_seed_notebook_passes_except_its_unfinished_lstm_forward():
    report = check(seed_namespace())
    status = {f.name: f.status for f in report.functions}
    assert status == {"sigmoid": "pass", "softmax": "pass", "rnn_cell": "pass", "rnn_forward": "pass",
                      "lstm_cell": "pass", "lstm_forward": "fail", "rnn_cell_backward": "missing",
                      "rnn_backward": "missing", "lstm_cell_backward": "missing", "lstm_backward": "missing"}
    lf = report["lstm_forward"]
    assert lf.cause == "returns_none" and "returned None" in lf.message and "return" in lf.message
    # the seed's global-maximum softmax is right on ordinary inputs: a warning, not a failure
    assert any("not robust" in w and "each column's maximum" in w for w in report["softmax"].warnings)
    assert any("overflow" in w for w in report["sigmoid"].warnings)


def test_seed_notebook_with_lstm_forward_completed_passes_everything_it_defines():
    report = check(seed_namespace(SEED_LSTM_FORWARD_DONE))
    assert report.summary == {"pass": 6, "fail": 0, "error": 0, "missing": 4}, report.text()
    assert report.ok and report.exit_code() == 0


def test_model_without_a_mistake_is_rnnkit_scratch():
    """The catalogue's model of each function, with no mistake, computes what scratch does
    (outputs, every cache field, every gradient) on every case."""
    def same(a, b):
        if isinstance(a, dict):
            assert set(a) >= set(b) or set(b) >= set(a)
            for k in set(a) & set(b):
                same(a[k], b[k])
        elif isinstance(a, (tuple, list)):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                same(x, y)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for name in FUNCTION_NAMES:
        info = INFO[name]
        for case in cases_for(name):
            if info.kind in ("act", "cell", "seq"):
                ours = model.FUNCTIONS[name](*case.args)
            else:
                ours = model.FUNCTIONS[name](*case.grads, forward_cache(info, reference_forward(info, case.args)))
            same(ours, reference(info, case))


@pytest.mark.slow
def test_every_recomputable_mistake_changes_the_result():
    """A catalogue entry that computed the right answer on every case could never be told apart."""
    def flat(v):
        return np.concatenate([np.ravel(np.asarray(x, float)) for x in _leaves(v)])
    for name in FUNCTION_NAMES:
        info = INFO[name]
        for mis in model.mistakes_for(name):
            differs = False
            for case in cases_for(name):
                with np.errstate(all="ignore"):
                    if info.kind in ("act", "cell", "seq"):
                        ours = model.FUNCTIONS[name](*case.args, mis=mis)
                    else:
                        cache = forward_cache(info, reference_forward(info, case.args))
                        ours = model.FUNCTIONS[name](*case.grads, cache, mis=mis)
                a, b = flat(ours), flat(reference(info, case))
                differs |= a.shape != b.shape or not np.allclose(a, b)
            assert differs, (name, mis)


def _leaves(v):
    if isinstance(v, dict):
        for k in sorted(v):
            yield from _leaves(v[k])
    elif isinstance(v, (tuple, list)):
        for x in v:
            yield from _leaves(x)
    elif isinstance(v, np.ndarray):
        yield v


def test_the_cases_use_sizes_that_all_differ():
    for name in FUNCTION_NAMES:
        if INFO[name].kind == "act":
            continue
        for case in cases_for(name)[1:]:
            s = case.sizes
            values = [s["n_x"], s["n_a"], s["n_y"], s["m"], s["T_x"]]
            assert len(set(values)) == 5 and s["n_a"] != 5 and s["m"] != 10


def test_notebook_example_is_the_notebooks_own_arrays():
    """The first case of lstm_cell is what the notebook's cell draws (seed 42, its order)."""
    np.random.seed(42)
    xt = np.random.randn(3, 10)
    a_prev = np.random.randn(5, 10)
    c_prev = np.random.randn(5, 10)
    p = {k: np.random.randn(5, 8) for k in ("Wf", "Wi", "Wo", "Wc")}
    p["Wy"] = np.random.randn(2, 5)
    for k in ("bf", "bi", "bo", "bc"):
        p[k] = np.random.randn(5, 1)
    p["by"] = np.random.randn(2, 1)
    args = cases_for("lstm_cell")[0].args
    for ours, theirs in zip(args[:3], (xt, a_prev, c_prev)):
        np.testing.assert_array_equal(ours, theirs)
    for k in p:
        np.testing.assert_array_equal(args[3][k], p[k])


# ----------------------------------------------------------------------------------------
# Diagnoses across functions
# ----------------------------------------------------------------------------------------

def test_a_wrong_helper_is_blamed_not_the_function_that_calls_it():
    report = check_namespace(namespace(mutant_source(MUTANTS["sigmoid sign error"])))
    assert report["sigmoid"].cause == "sigmoid.sign"
    cell = report["lstm_cell"]
    assert cell.status == "fail" and cell.first_wrong == "ft" and cell.cause == "dependency"
    assert "sigmoid" in cell.message and "fix sigmoid first" in cell.message
    fwd = report["lstm_forward"]                     # calls the lstm_cell that calls sigmoid
    assert fwd.cause == "dependency" and "lstm_cell" in fwd.message


def test_backward_is_judged_on_a_correct_cache_when_the_forward_is_wrong():
    src = mutant_source(MUTANTS["rnn_cell sigmoid for tanh"])
    report = check_namespace(namespace(src))
    assert report["rnn_cell"].status == "fail"
    back = report["rnn_cell_backward"]
    assert back.status == "pass"
    assert any("rnn_cell is wrong" in w and "itself is right" in w for w in back.warnings)


def test_backward_on_the_seed_layout_says_the_cache_lacks_a_prev():
    ns = seed_namespace()
    ns.update({k: v for k, v in namespace(CORRECT).items() if k.endswith("backward")})
    report = check_namespace(ns, ["rnn_cell_backward", "rnn_backward"])
    for f in report.functions:
        assert f.status == "pass"
        assert any("no a_prev" in w for w in f.warnings), f.warnings


def test_rnnkit_layout_backward_works_with_a_course_forward():
    ns = namespace(CORRECT)
    ns["rnn_cell_backward"] = scratch.rnn_cell_backward    # wants the 5-field RNNCache
    res = check_namespace(ns, ["rnn_cell_backward"])["rnn_cell_backward"]
    assert res.status == "pass"
    assert any("another one" in w for w in res.warnings)


def test_two_mistakes_name_the_first_and_say_there_is_another():
    src = mutant_source(MUTANTS["lstm_cell tanh on the forget gate"]).replace(
        "a_next = ot * np.tanh(c_next)", "a_next = ot * c_next")
    res = check_namespace(namespace(src), ["lstm_cell"])["lstm_cell"]
    assert res.first_wrong == "ft" and res.cause == "lstm.act_f"
    assert "second mistake" in res.message


def test_unknown_mistake_still_names_the_first_wrong_quantity():
    src = CORRECT.replace("cct = np.tanh(np.dot(Wc, concat) + bc)", "cct = np.tanh(np.dot(Wc, concat) + bc) * 0.5")
    res = check_namespace(namespace(src), ["lstm_cell"])["lstm_cell"]
    assert (res.status, res.first_wrong, res.cause) == ("fail", "cct", None)
    assert "No catalogued mistake" in res.message and "cct = tanh(Wc @ concat + bc)" in res.message


def test_course_aliases_are_found():
    ns = namespace(CORRECT)
    ns["lstm_cell_forward"] = ns.pop("lstm_cell")
    res = check_namespace(ns, ["lstm_cell"])["lstm_cell"]
    assert res.status == "pass" and "lstm_cell_forward" in res.warnings[0]


def test_wrong_structure_is_a_failure_with_the_expected_shape_of_the_result():
    src = CORRECT.replace("return a, y, c, caches", "return a, y, caches")
    res = check_namespace(namespace(src), ["lstm_forward"])["lstm_forward"]
    assert res.status == "fail" and res.first_wrong is None
    assert "a tuple of 3" in res.message and "(a, y, c, caches)" in res.message


def test_a_swapped_size_is_shown_by_name():
    src = CORRECT.replace('n_y, n_a = parameters["Wya"].shape', 'n_a, n_y = parameters["Wya"].shape')
    res = check_namespace(namespace(src), ["rnn_forward"])["rnn_forward"]
    assert res.status == "error"
    assert "shape" in res.message


# ----------------------------------------------------------------------------------------
# The in-notebook API and the report
# ----------------------------------------------------------------------------------------

def test_check_one_function_uses_its_own_name_and_globals():
    ns = namespace(mutant_source(MUTANTS["lstm_cell without bi"]))
    report = check(ns["lstm_cell"])
    assert [f.name for f in report.functions] == ["lstm_cell"]
    assert report["lstm_cell"].first_wrong == "it"
    renamed = ns["lstm_cell"]
    assert check(renamed, "lstm_cell")["lstm_cell"].cause == "lstm.no_bi"


def test_check_refuses_what_it_cannot_check():
    def my_cell(x):
        return x
    with pytest.raises(ConfigError, match="my_cell"):
        check(my_cell)
    with pytest.raises(ConfigError, match="expected function names"):
        check(scratch, ["lstm_cel"])
    with pytest.raises(ConfigError, match="expected a function"):
        check(42)


def test_printing_in_learner_code_does_not_reach_the_report(capsys):
    src = CORRECT.replace("    return 1 / (1 + np.exp(-x))", "    print('hello from sigmoid')\n    return 1 / (1 + np.exp(-x))")
    report = check_namespace(namespace(src), ["sigmoid"])
    assert report.ok
    assert "hello" not in capsys.readouterr().out


def test_json_report_has_exactly_the_issues_shape():
    report = check_namespace(namespace(mutant_source(MUTANTS["rnn_forward a0 at every step"])))
    obj = json.loads(report.json())
    assert set(obj) == {"file", "functions", "summary"}
    assert set(obj["summary"]) == {"pass", "fail", "error", "missing"}
    assert sum(obj["summary"].values()) == len(obj["functions"]) == 10
    for f in obj["functions"]:
        assert set(f) == {"name", "status", "first_wrong", "time_step", "max_abs_error", "message", "warnings"}
        assert f["status"] in ("pass", "fail", "error", "missing")
        assert f["first_wrong"] is None or isinstance(f["first_wrong"], str)
        assert f["time_step"] is None or isinstance(f["time_step"], int)
        assert f["max_abs_error"] is None or (isinstance(f["max_abs_error"], float) and math.isfinite(f["max_abs_error"]))
        assert isinstance(f["message"], str) and isinstance(f["warnings"], list)
    fwd = next(f for f in obj["functions"] if f["name"] == "rnn_forward")
    assert (fwd["status"], fwd["first_wrong"], fwd["time_step"]) == ("fail", "a", 1)
    assert fwd["max_abs_error"] > 1e-3


def test_text_and_html_reports_show_the_first_wrong_quantity_and_the_hint():
    report = check_namespace(namespace(mutant_source(MUTANTS["lstm_cell [xt; a_prev]"])), ["lstm_cell"])
    text = report.text()
    assert "FAIL    lstm_cell" in text and "ft is wrong" in text and "[xt; a_prev]" in text
    assert "expected [" in text and "got      [" in text
    page = report._repr_html_()
    assert "<table>" in page and "FAIL" in page and "[xt; a_prev]" in page


def test_encode_decode_round_trip_keeps_values_shapes_and_structure():
    value = (np.array([[1.5, np.nan], [np.inf, -np.inf]]), [np.float32(2.0), 3, None],
             {"W": np.arange(6.0).reshape(2, 3), "n": "text"}, np.zeros((0, 4)))
    back = decode(json.loads(json.dumps(encode(value))))
    assert isinstance(back, tuple) and isinstance(back[1], list) and isinstance(back[2], dict)
    np.testing.assert_array_equal(back[0], value[0])
    np.testing.assert_array_equal(back[2]["W"], value[2]["W"])
    assert back[3].shape == (0, 4) and back[1][0] == 2.0 and back[1][2] is None


def test_catalogue_hints_are_sentences():
    for mis in CATALOGUE.values():
        assert mis.hint.endswith(".") and len(mis.hint) > 20, mis.id


def test_docs_show_what_the_checker_prints_and_list_every_catalogue_entry():
    import re
    docs = Path(__file__).resolve().parents[1] / "docs"
    md = (docs / "tutorial.md").read_text(encoding="utf-8")
    section = md[md.index("## 6. When your own code is wrong"):]
    code = re.findall(r"```python\n(.*?)```", section, re.S)
    ns = {"np": np, "scratch": scratch}
    exec(code[0], ns)                                     # the tutorial's deliberate mistake
    shown = re.findall(r"```text\n(.*?)```", section, re.S)[0]
    assert shown in ns["report"].text()
    exec(code[1], ns)                                     # ... and its fix
    assert ns["report"].ok
    page = (docs / "check.md").read_text(encoding="utf-8")
    for mis in CATALOGUE:
        crossing = re.fullmatch(r"lstm\.[fico]_[Wb][fico]", mis)
        assert f"`{mis}`" in page or (crossing and "`lstm.{g}_W{h}`, `lstm.{g}_b{h}`" in page), mis

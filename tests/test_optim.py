"""Tests for rnnkit.optim: optimizers, clipping and schedules against torch.optim."""

import json
import math
import textwrap

import numpy as np
import pytest

from rnnkit import optim
from rnnkit.errors import CheckpointError, ConfigError, DTypeError, ParameterKeyError, ShapeError

from needs import require

SHAPES = {"rnn.weight_ih_l0": (4, 3), "rnn.bias_hh_l0": (4,), "fc.weight": (2, 3, 2)}
N_STEPS = 6

# (rnnkit/torch class name, kwargs) — same kwargs are valid for both.
CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.3,
                     eps=1e-6)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.02, momentum=0.7)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.3, amsgrad=True)),
]
CASE_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES]


def make_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def make_grads(n_steps=N_STEPS, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    # Varying scales so that second moments and clipping see different magnitudes.
    return [{k: (rng.standard_normal(s) * 10.0 ** rng.uniform(-2, 1)).astype(dtype)
             for k, s in SHAPES.items()} for _ in range(n_steps)]


@pytest.mark.parametrize("name,kwargs", CASES, ids=CASE_IDS)
def test_matches_torch_each_step(name, kwargs):
    torch = require("torch")
    params = make_params()
    ref = {k: torch.tensor(v.copy(), dtype=torch.float64) for k, v in params.items()}
    topt = getattr(torch.optim, name)(list(ref.values()), **kwargs)
    opt = getattr(optim, name)(params, **kwargs)
    arrays_before = {k: id(v) for k, v in params.items()}
    for grads in make_grads():
        for k, t in ref.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
        opt.step(grads)
        for k, t in ref.items():
            expected = t.detach().numpy()
            np.testing.assert_allclose(params[k], expected, rtol=1e-10, atol=1e-14, err_msg=k)
    # In place: the dict still holds the very same arrays, and they moved.
    assert {k: id(v) for k, v in params.items()} == arrays_before
    assert not np.allclose(params["fc.weight"], make_params()["fc.weight"])


def test_lr_change_between_steps_matches_torch():
    torch = require("torch")
    params = make_params()
    ref = [torch.tensor(v.copy()) for v in params.values()]
    topt = torch.optim.AdamW(ref, lr=0.01, weight_decay=0.1)
    opt = optim.AdamW(params, lr=0.01, weight_decay=0.1)
    for k, grads in enumerate(make_grads()):
        lr = 0.01 * 0.5 ** k
        topt.param_groups[0]["lr"] = lr
        for t, g in zip(ref, grads.values()):
            t.grad = torch.tensor(g)
        topt.step()
        opt.step(grads, lr=lr)
        assert opt.lr == lr
        for p, t in zip(params.values(), ref):
            np.testing.assert_allclose(p, t.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name,kwargs", CASES, ids=CASE_IDS)
def test_state_dict_resume_is_bit_exact(name, kwargs):
    grads = make_grads()
    straight = make_params()
    opt = getattr(optim, name)(straight, **kwargs)
    for g in grads:
        opt.step(g)

    resumed = make_params()
    first = getattr(optim, name)(resumed, **kwargs)
    for g in grads[:3]:
        first.step(g)
    arrays, meta = first.state_dict()
    meta = json.loads(json.dumps(meta))
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    assert all("/" in key and key.split("/", 1)[1] in SHAPES for key in arrays)
    params2 = {k: v.copy() for k, v in resumed.items()}
    first.step(grads[3])  # must not leak into the saved copies
    # Hyper-parameters come from the checkpoint, not from the constructor.
    second = optim.get_optimizer(meta["name"], params2, **meta["hyper"])
    second.lr = 123.0
    second.load_state_dict(arrays, meta)
    assert second.lr == kwargs["lr"] and second.step_count == 3
    for g in grads[3:]:
        second.step(g)
    for k in SHAPES:
        np.testing.assert_array_equal(params2[k], straight[k])


def test_state_dict_names_and_meta():
    opt = optim.Adam(make_params(), lr=0.01, amsgrad=True)
    opt.step(make_grads(1)[0])
    arrays, meta = opt.state_dict()
    assert set(arrays) == {f"{s}/{k}" for s in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
                           for k in SHAPES}
    assert meta["class"] == "Adam" and meta["step"] == 1
    assert meta["hyper"] == {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
                             "weight_decay": 0.0, "amsgrad": True}
    assert json.loads(json.dumps(meta)) == meta


def _saved(name="adam", **kw):
    opt = optim.get_optimizer(name, make_params(), **kw)
    opt.step(make_grads(1)[0])
    return opt.state_dict()


def test_load_state_dict_errors():
    arrays, meta = _saved()
    fresh = lambda: optim.Adam(make_params())  # noqa: E731
    with pytest.raises(ConfigError, match="class SGD, got 'Adam'"):
        optim.SGD(make_params(), lr=0.1).load_state_dict(arrays, meta)
    with pytest.raises(ConfigError, match="class Adam, got 'SGD'"):
        fresh().load_state_dict(*_saved("sgd", lr=0.1, momentum=0.9))
    with pytest.raises(ConfigError, match="Adam"):
        optim.AdamW(make_params()).load_state_dict(arrays, meta)
    bad = dict(arrays)
    del bad["exp_avg/fc.weight"]
    with pytest.raises(CheckpointError, match="exp_avg/fc.weight"):
        fresh().load_state_dict(bad, meta)
    bad = dict(arrays, **{"exp_avg/fc.weight": np.zeros((3, 3))})
    with pytest.raises(CheckpointError, match=r"exp_avg/fc.weight.*\(2, 3, 2\)"):
        fresh().load_state_dict(bad, meta)
    bad = dict(arrays, **{"exp_avg/fc.weight": np.full((2, 3, 2), np.nan)})
    with pytest.raises(CheckpointError, match="NaN"):
        fresh().load_state_dict(bad, meta)
    other = make_params()
    other["extra"] = np.zeros(2)
    with pytest.raises(CheckpointError, match="extra"):
        optim.Adam(other).load_state_dict(arrays, meta)
    with pytest.raises(CheckpointError, match="step"):
        fresh().load_state_dict(arrays, dict(meta, step=-1))
    with pytest.raises(CheckpointError, match="hyper"):
        fresh().load_state_dict(arrays, dict(meta, hyper={"lr": 0.1}))
    with pytest.raises(CheckpointError, match="amsgrad|max_exp_avg_sq"):
        fresh().load_state_dict(arrays, dict(meta, hyper=dict(meta["hyper"], amsgrad=True)))
    with pytest.raises(CheckpointError, match="format"):
        fresh().load_state_dict(arrays, {})
    # A failed load changes nothing.
    opt = fresh()
    opt.lr = 0.5
    with pytest.raises(CheckpointError):
        opt.load_state_dict({}, meta)
    assert opt.lr == 0.5 and opt.step_count == 0


def test_step_validates_keys_and_shapes():
    params = make_params()
    before = {k: v.copy() for k, v in params.items()}
    opt = optim.SGD(params, lr=0.1)
    g = make_grads(1)[0]
    with pytest.raises(ParameterKeyError, match="fc.weight"):
        opt.step({k: v for k, v in g.items() if k != "fc.weight"})
    with pytest.raises(ParameterKeyError, match="bogus"):
        opt.step(dict(g, bogus=np.zeros(1)))
    with pytest.raises(ShapeError, match=r"rnn.bias_hh_l0.*\(4,\).*\(5,\)"):
        opt.step(dict(g, **{"rnn.bias_hh_l0": np.zeros(5)}))
    assert isinstance(ShapeError("x"), ValueError) and isinstance(ParameterKeyError("x"), KeyError)
    for k in params:  # nothing was applied
        np.testing.assert_array_equal(params[k], before[k])
    assert opt.step_count == 0


def test_constructor_validation():
    p = make_params()
    with pytest.raises(ConfigError, match="nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ConfigError, match="betas"):
        optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ConfigError, match="lr"):
        optim.Adam(p, lr=-1.0)
    with pytest.raises(ConfigError, match="empty"):
        optim.Adam({})
    with pytest.raises(DTypeError, match="float32 or float64"):
        optim.Adam({"w": np.zeros(3, dtype=np.int64)})
    with pytest.raises(DTypeError, match="NumPy array"):
        optim.Adam({"w": [1.0, 2.0]})
    opt = optim.Adam(p)
    with pytest.raises(ConfigError):
        opt.lr = float("nan")


def test_get_optimizer():
    p = make_params()
    for name, cls in [("sgd", optim.SGD), ("adagrad", optim.Adagrad), ("rmsprop", optim.RMSprop),
                      ("adam", optim.Adam), ("AdamW", optim.AdamW)]:
        opt = optim.get_optimizer(name, p, lr=0.5)
        assert type(opt) is cls and opt.lr == 0.5
    assert optim.get_optimizer("adamw", p).weight_decay == 1e-2
    with pytest.raises(ConfigError, match="'sgd', 'adagrad', 'rmsprop', 'adam', 'adamw'"):
        optim.get_optimizer("lion", p)
    with pytest.raises(ConfigError, match="momentum"):
        optim.get_optimizer("adam", p, momentum=0.9)


@pytest.mark.parametrize("name,kwargs", CASES, ids=CASE_IDS)
def test_float32_stays_float32(name, kwargs):
    torch = require("torch")
    params = make_params(dtype=np.float32)
    ref = [torch.tensor(v.copy()) for v in params.values()]
    topt = getattr(torch.optim, name)(ref, **kwargs)
    opt = getattr(optim, name)(params, **kwargs)
    for grads in make_grads(3):  # float64 grads are cast to the parameters' dtype
        opt.step(grads)
        for t, g in zip(ref, grads.values()):
            t.grad = torch.tensor(g.astype(np.float32))
        topt.step()
    for (k, p), t in zip(params.items(), ref):
        assert p.dtype == np.float32, k
        np.testing.assert_allclose(p, t.numpy(), rtol=1e-5, atol=1e-6)
    arrays, _ = opt.state_dict()
    assert all(a.dtype == np.float32 for a in arrays.values())


# ------------------------------------------------------------------------------------------
# Clipping
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (1e6, 2.0), (0.3, 1.0),
                                                (0.2, math.inf), (1.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    torch = require("torch")
    grads = make_grads(1)[0]
    ts = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(ts, grads.values()):
        t.grad = torch.tensor(g.copy())
    expected = float(torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type=norm_type))
    total = optim.clip_grad_norm(grads, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(expected, rel=1e-12)
    for t, g in zip(ts, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_and_global_norm_match_torch():
    torch = require("torch")
    grads = make_grads(1, seed=5)[0]
    norm = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values())))
    assert optim.global_norm(grads) == pytest.approx(norm, rel=1e-13)
    ts = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(ts, grads.values()):
        t.grad = torch.tensor(g.copy())
    torch.nn.utils.clip_grad_value_(ts, 0.05)
    ids = {k: id(g) for k, g in grads.items()}
    assert optim.clip_grad_value(grads, 0.05) == pytest.approx(norm, rel=1e-13)
    assert {k: id(g) for k, g in grads.items()} == ids
    for t, g in zip(ts, grads.values()):
        np.testing.assert_array_equal(g, t.grad.numpy())
    assert max(np.abs(g).max() for g in grads.values()) == 0.05


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clipping_nonfinite_leaves_grads(bad):
    for clip in (lambda g: optim.clip_grad_norm(g, 1.0), lambda g: optim.clip_grad_value(g, 0.1)):
        grads = make_grads(1)[0]
        grads["fc.weight"][0, 0, 0] = bad
        before = {k: v.copy() for k, v in grads.items()}
        total = clip(grads)
        assert math.isinf(total) if bad == np.inf else math.isnan(total)
        for k in grads:
            np.testing.assert_array_equal(grads[k], before[k])


def test_global_norm_no_overflow_and_empty():
    g = {"a": np.array([3e200, 4e200])}
    assert optim.global_norm(g) == pytest.approx(5e200, rel=1e-14)
    assert optim.clip_grad_norm(g, 1.0) == pytest.approx(5e200, rel=1e-14)
    np.testing.assert_allclose(g["a"], [0.6, 0.8], rtol=1e-12)
    assert optim.global_norm({}) == 0.0
    g32 = {"a": np.full(4, 1e30, dtype=np.float32)}  # squares overflow float32
    assert optim.global_norm(g32) == pytest.approx(2e30, rel=1e-6)


# ------------------------------------------------------------------------------------------
# Schedules
# ------------------------------------------------------------------------------------------

def _torch_lrs(torch, make, n=30, base_lr=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        p.grad = torch.zeros(1)
        opt.step()
        sched.step()
    return out


SCHEDULE_CASES = [
    ("step", lambda o, L: L.StepLR(o, step_size=7, gamma=0.5),
     optim.StepLR(0.1, step_size=7, gamma=0.5)),
    ("exp", lambda o, L: L.ExponentialLR(o, gamma=0.9), optim.ExponentialLR(0.1, 0.9)),
    ("cos", lambda o, L: L.CosineAnnealingLR(o, T_max=12, eta_min=0.001),
     optim.CosineAnnealingLR(0.1, T_max=12, eta_min=0.001)),
    ("cos0", lambda o, L: L.CosineAnnealingLR(o, T_max=30),
     optim.CosineAnnealingLR(0.1, T_max=30)),
    ("warm-cos",
     lambda o, L: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1, total_iters=5),
                                     L.CosineAnnealingLR(o, T_max=20, eta_min=0.01)],
                                 milestones=[5]),
     optim.LinearWarmup(optim.CosineAnnealingLR(0.1, 20, 0.01), 5, start_factor=0.1)),
    ("warm-const", lambda o, L: L.LinearLR(o, total_iters=8),
     optim.LinearWarmup(0.1, 8)),
    ("const", lambda o, L: L.LambdaLR(o, lambda k: 1.0), optim.ConstantLR(0.1)),
]


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_schedules_match_torch(case):
    torch = require("torch")
    import warnings
    L = torch.optim.lr_scheduler
    _, make, ours = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _torch_lrs(torch, lambda o: make(o, L))
    got = [ours(k) for k in range(len(expected))]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # The config survives JSON and rebuilds the same function.
    rebuilt = optim.schedule_from_config(json.loads(json.dumps(ours.to_config())))
    assert type(rebuilt) is type(ours) and rebuilt == ours
    assert [rebuilt(k) for k in range(30)] == got


def test_schedule_errors():
    with pytest.raises(ConfigError, match="StepLR"):
        optim.schedule_from_config({"name": "Nope"})
    with pytest.raises(ConfigError, match="gamma"):
        optim.schedule_from_config({"name": "ExponentialLR", "base_lr": 0.1})
    with pytest.raises(ConfigError, match="step"):
        optim.StepLR(0.1, 5)(-1)
    with pytest.raises(ConfigError, match="T_max"):
        optim.CosineAnnealingLR(0.1, T_max=0)
    assert optim.LinearWarmup(0.2, 0)(0) == 0.2


# ============================================================================== the package
# The public names of rnnkit.optim from before it was split into optimizers/clipping/schedules.
PUBLIC = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "get_optimizer", "OPTIMIZERS",
          "clip_grad_norm", "clip_grad_value", "global_norm",
          "Schedule", "ConstantLR", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup",
          "schedule_from_config", "SCHEDULES", "SCHEDULE_NAMES"]


def test_package_reexports_every_public_name_once():
    from rnnkit.optim import clipping, optimizers, schedules
    assert sorted(optim.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        homes = [m for m in (optimizers, clipping, schedules) if name in m.__all__]
        assert len(homes) == 1, (name, homes)
        assert getattr(optim, name) is getattr(homes[0], name)


def test_package_docstring_example_runs():
    """The ``Example::`` block of rnnkit.optim's docstring is real code: run it."""
    after = optim.__doc__.split("Example", 1)[1].split("::\n", 1)[1].splitlines()
    block = []
    for line in after:                                # the indented lines (and blank ones)
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    code = textwrap.dedent("\n".join(block))
    ns = {}
    exec(compile(code, "rnnkit.optim docstring", "exec"), ns)
    opt, model = ns["opt"], ns["model"]
    assert opt.step_count == 100 and opt.lr == ns["schedule"](99)
    assert all(np.isfinite(p).all() for p in model.parameters().values())
    assert math.isfinite(ns["total"])
    assert ns["loss"] < 0.75 * math.log(len(ns["data"].vocab))      # it learned something

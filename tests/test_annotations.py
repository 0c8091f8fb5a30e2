"""The public API is annotated: every parameter and every return of every public function and
method has a type annotation (the package ships ``py.typed``, so a type checker reads them).

"Public" is what the packages export: ``rnnkit.__all__`` and the ``__all__`` of each public
subpackage and interop module (:data:`MODULES`), and the modules of the training loop and
the gradient check; for a class, its own public methods, ``__init__`` and ``__call__``
(``__init__`` needs no return annotation, as PEP 484 allows).
"""

import importlib
import inspect

import pytest

from needs import require

MODULES = ["rnnkit", "rnnkit.nn", "rnnkit.optim", "rnnkit.data", "rnnkit.datasets",
           "rnnkit.engines", "rnnkit.check", "rnnkit.interop.torch", "rnnkit.interop.onnx",
           "rnnkit.interop.onnx_runtime", "rnnkit.interop.notebook", "rnnkit.train",
           "rnnkit.gradcheck"]
#: Modules without an ``__all__``: their public names are the classes and functions they define.
OWN_NAMES = {"rnnkit.train", "rnnkit.gradcheck"}


def _names(mod) -> list:
    if mod.__name__ in OWN_NAMES and not hasattr(mod, "__all__"):
        return [n for n, v in vars(mod).items() if not n.startswith("_")
                and (inspect.isclass(v) or inspect.isfunction(v))
                and getattr(v, "__module__", "") == mod.__name__]
    return list(mod.__all__)


def _missing(fn, where: str) -> list:
    """``where: parameter x`` / ``where: return`` for each annotation ``fn`` lacks."""
    sig = inspect.signature(fn)
    out = []
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 and p.name in ("self", "cls"):
            continue
        if p.annotation is inspect.Parameter.empty:
            out.append(f"{where}: parameter {p.name}")
    if sig.return_annotation is inspect.Signature.empty and fn.__name__ != "__init__":
        out.append(f"{where}: return")
    return out


def _callables(modname: str):
    """``(where, function)`` for every public function and method of ``modname``."""
    mod = importlib.import_module(modname)
    for name in _names(mod):
        obj = getattr(mod, name)
        if not (getattr(obj, "__module__", "") or "").startswith("rnnkit"):
            continue
        if inspect.isclass(obj):
            if issubclass(obj, BaseException):
                continue
            for attr, v in vars(obj).items():
                if attr.startswith("_") and attr not in ("__init__", "__call__"):
                    continue
                if isinstance(v, (staticmethod, classmethod)):
                    v = v.__func__
                if isinstance(v, property):
                    v = v.fget
                if inspect.isfunction(v):
                    yield f"{modname}.{name}.{attr}", v
        elif inspect.isfunction(inspect.unwrap(obj)):
            yield f"{modname}.{name}", inspect.unwrap(obj)


def test_the_walk_finds_the_public_api():
    found = dict(pair for m in ("rnnkit.nn", "rnnkit.optim", "rnnkit.train") for pair in _callables(m))
    for where in ("rnnkit.nn.LSTM.__init__", "rnnkit.nn.RNNBase.forward", "rnnkit.nn.CharLM.loss",
                  "rnnkit.optim.Adam.__init__", "rnnkit.train.Trainer.fit"):
        assert where in found, where
    assert len(found) > 100


@pytest.mark.parametrize("modname", MODULES)
def test_every_public_signature_is_annotated(modname):
    if modname.startswith("rnnkit.interop.") and modname != "rnnkit.interop.notebook":
        require({"rnnkit.interop.torch": "torch", "rnnkit.interop.onnx": "onnx",
                 "rnnkit.interop.onnx_runtime": "onnxruntime"}[modname])
    missing = [m for where, fn in _callables(modname) for m in _missing(fn, where)]
    assert not missing, f"{len(missing)} missing annotation(s):\n" + "\n".join(missing)

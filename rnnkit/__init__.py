"""rnnkit: recurrent neural networks in NumPy.

* :mod:`rnnkit.scratch` - the seed notebook's API (features-first, parameter dicts), complete.
* :mod:`rnnkit.nn` - fast fused RNN / LSTM / GRU layers with exact backward, PyTorch layout.
* :mod:`rnnkit.gradcheck` - finite-difference gradient checks for any layer or model.
* :mod:`rnnkit.optim` - optimizers, clipping and schedules over name -> array dicts.
* :mod:`rnnkit.data`, :mod:`rnnkit.datasets` - vocabularies, batching, built-in data.
"""

from ._mode import enable_grad, is_grad_enabled, no_grad
from ._threads import get_num_threads, set_num_threads
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

__version__ = "0.1.0"

__all__ = list(_errors_all) + ["__version__", "no_grad", "enable_grad", "is_grad_enabled",
                               "set_num_threads", "get_num_threads"]

"""The torch engine: the same training run on PyTorch, on a CPU or a GPU, in one process or in
many under ``torchrun`` (DistributedDataParallel). Needs ``pip install -e ".[torch]"``.

The recipe is rnnkit's, reused:

* the model is the rnnkit model (initialised from the seed) copied into its PyTorch twin
  (:class:`rnnkit.interop.torch.TorchCharLM` / ``TorchSeq2Seq``, the ones ``to_torch`` returns,
  whose dropout between layers draws from torch's ordinary generator on every device);
* the data are the same batch sources; under torchrun every process draws the same *global*
  batch (a pure function of the seed and the step) and takes its slice of the columns;
* the loss is the mean over the global batch's target tokens: each process backpropagates
  ``sum over its tokens / global count * world size``, which DDP's gradient averaging turns
  into exactly the one-process gradient;
* clipping has rnnkit's semantics (the global norm in float64, no clipping when it is not
  finite); the optimizer is ``torch.optim``'s (the update rules rnnkit's optimizers copy) with
  the learning rate of rnnkit's schedule at every step;
* the state goes to the checkpoint in rnnkit's formats (weights under PyTorch's names, the
  optimizer state as :meth:`rnnkit.optim.Optimizer.state_dict` writes it), so runs resume
  across engines. torch's generator states (CPU, and CUDA when used) are kept per process in
  ``trainer.safetensors`` (``torch_rng.cpu.<rank>``, ``torch_rng.cuda.<rank>``).

On CUDA the engine asks cuDNN for deterministic algorithms and turns TF32 off (float32 means
float32, as in NumPy), so that a resumed run repeats a straight one.
"""

from __future__ import annotations

import gc
import math
import os
import re
from collections import defaultdict

import numpy as np
import torch
import torch.distributed as dist

from ..cells import map_state, state_arrays, state_from_arrays
from ..errors import ConfigError, DataError, DistributedError, RnnkitError
from ..interop.torch import TorchCharLM, TorchSeq2Seq
from ..nn.models import CharLM, LossResult
from ..nn.seq2seq import Seq2Seq
from ..ops import IGNORE_INDEX
from ..optim import OPTIMIZERS, get_optimizer
from .base import Engine, LocalGroup

__all__ = ["TorchGroup", "TorchEngine"]

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d{1,3}))?$")
#: rnnkit optimizers whose torch twin keeps a "step" entry per parameter.
_TORCH_STEP = ("adagrad", "rmsprop", "adam", "adamw")


# ============================================================================== processes
def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise DistributedError(f"the environment variable {name}={value!r} is not an integer; "
                               f"start several processes with torchrun.") from None


def _resolve_device(device, world_size: int, local_rank: int) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    m = _DEVICE_RE.match(str(device)) if isinstance(device, str) else None
    if m is None:
        raise ConfigError(f"--device: expected cpu, cuda or cuda:N, got {device!r}.")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        if index is not None:
            raise ConfigError(f"--device: expected cpu, cuda or cuda:N, got {device!r}.")
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(f"--device {device}: PyTorch sees no CUDA device here (torch "
                          f"{torch.__version__}, {build}). Use --device cpu.")
    count = torch.cuda.device_count()
    if index is not None and world_size > 1:
        raise ConfigError(f"--device {device}: under torchrun every process takes the GPU of its "
                          f"local rank (cuda:LOCAL_RANK); pass --device cuda.")
    i = local_rank if world_size > 1 else (int(index) if index is not None else torch.cuda.current_device())
    if i >= count:
        raise ConfigError(f"--device: cuda:{i} does not exist; this machine has {count} CUDA "
                          f"device(s) (cuda:0 .. cuda:{count - 1}).")
    return torch.device("cuda", i)


def _describe_error(e: BaseException) -> str:
    if isinstance(e, RnnkitError):
        return str(e)
    return f"unexpected {type(e).__name__}: {e}"


#: Seconds a process waits for the others (joining the job, any collective) before it gives
#: up with an error, instead of gloo's and nccl's 30 minutes: ``RNNKIT_DIST_TIMEOUT`` (default
#: 600, long enough for the main process to encode a large text while the others wait).
DIST_TIMEOUT_S = 600


def dist_timeout():
    """The :data:`DIST_TIMEOUT_S` (or ``RNNKIT_DIST_TIMEOUT``) as a ``timedelta``."""
    from datetime import timedelta
    seconds = _env_int("RNNKIT_DIST_TIMEOUT", DIST_TIMEOUT_S)
    if seconds < 1:
        raise DistributedError(f"RNNKIT_DIST_TIMEOUT={seconds}: expected a number of seconds >= 1.")
    return timedelta(seconds=seconds)


class TorchGroup(LocalGroup):
    """This process's place in a torchrun job (or a single process) and its device.

    ``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (and the rendezvous); with more
    than one process the group is started here (``env://``): gloo on CPU, nccl on CUDA, where
    every process takes ``cuda:LOCAL_RANK``.
    """

    def __init__(self, device=None):
        self.world_size = _env_int("WORLD_SIZE", 1)
        self.rank = _env_int("RANK", 0)
        self.local_rank = _env_int("LOCAL_RANK", 0)
        self.device = _resolve_device(device, self.world_size, self.local_rank)
        self.backend = None
        self._started = False
        self._before_close = []                # DDP wrappers to drop before the group goes
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        if self.world_size > 1:
            self.backend = "nccl" if self.device.type == "cuda" else "gloo"
            if not dist.is_initialized():
                try:
                    dist.init_process_group(self.backend, timeout=dist_timeout())
                except (RuntimeError, ValueError) as e:
                    raise DistributedError(f"could not join the torchrun job ({self.backend}): "
                                           f"{e}") from None
                self._started = True

    def describe(self) -> str:
        if self.world_size == 1:
            return "1 process"
        return f"{self.world_size} processes (torchrun, {self.backend})"

    def _comm_device(self):
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"lost contact with the other processes of this torchrun job "
                                   f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); one of "
                                   f"them stopped - see torchrun's report for its rank.") from None

    def allreduce(self, values, error=None) -> list:
        if self.world_size == 1:
            return super().allreduce(values, error)
        buf = torch.tensor([float(v) for v in values] + [1.0 if error is not None else 0.0],
                           dtype=torch.float64, device=self._comm_device())
        self._call(dist.all_reduce, buf)
        out = buf.tolist()
        if out[-1] > 0:
            self._raise(error)
        return out[:-1]

    def _raise(self, error):
        """Every process raises: the failing ones their own error, the others the error of
        the first failing process (so that rank 0 prints the one message)."""
        messages = [None] * self.world_size
        self._call(dist.all_gather_object, messages,
                   None if error is None else _describe_error(error))
        if error is not None:
            error._rnnkit_agreed = True
            raise error
        first = next(r for r, m in enumerate(messages) if m is not None)
        err = DistributedError(f"process {first} of {self.world_size} (rank {first}) failed: "
                               f"{messages[first]}")
        err._rnnkit_agreed = True
        raise err

    def main_first(self, fn):
        if self.world_size == 1:
            return fn()
        result, error = None, None
        for turn in (True, False):
            if (self.local_rank == 0) == turn:
                try:
                    result = fn()
                except Exception as e:   # noqa: BLE001 - agreed on below, raised everywhere
                    error = e
            self.agree(error)
        return result

    def broadcast(self, obj):
        if self.world_size == 1:
            return obj
        box = [obj]
        self._call(dist.broadcast_object_list, box, 0)
        return box[0]

    def all_gather(self, obj) -> list:
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size
        self._call(dist.all_gather_object, out, obj)
        return out

    def close(self, in_sync: bool = True) -> None:
        """Leave the job. ``in_sync``: every process got here the same way (a finished run or
        an agreed error); then they wait for each other and end the group together (a process
        that ends it while another still uses it can abort). Otherwise the group is left as it
        is (a process failed alone; torchrun stops the others)."""
        while self._before_close:
            self._before_close.pop()()
        gc.collect()          # DDP holds the group: free it now, not while Python shuts down
        if self._started and dist.is_initialized() and in_sync:
            try:
                dist.barrier()
            except (RuntimeError, ValueError):
                return
            dist.destroy_process_group()
            self._started = False


# ============================================================================== the model
def _loss_sum(logits, y):
    """Sum of the cross-entropy over the targets that are not IGNORE_INDEX (deterministic on
    CUDA too: no atomics)."""
    V = logits.shape[-1]
    y = y.reshape(-1)
    valid = y != IGNORE_INDEX
    logp = torch.log_softmax(logits.reshape(-1, V), dim=-1)
    picked = logp.gather(1, torch.where(valid, y, 0)[:, None])[:, 0]
    return -torch.where(valid, picked, torch.zeros((), dtype=picked.dtype, device=picked.device)).sum()


def _scalar_dtype():
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


# ============================================================================== the engine
class TorchEngine(Engine):
    """Train an rnnkit CharLM on PyTorch (see the module docstring and
    :class:`rnnkit.engines.Engine`)."""

    name = "torch"

    def __init__(self, model, config, group=None):
        if not isinstance(model, (CharLM, Seq2Seq)):
            raise ConfigError(f"the torch engine trains CharLM and Seq2Seq models (what `rnnkit "
                              f"train` builds); train a {type(model).__name__} with engine='numpy'.")
        super().__init__(model, config, group if group is not None else TorchGroup())
        self.device = self.group.device
        self.pairs = isinstance(model, Seq2Seq)
        if getattr(model.config, "learn_initial_state", False):
            raise ConfigError("the torch engine: expected a model without a learned initial state, "
                              "got learn_initial_state=true in its config. Train it with the "
                              "numpy engine (the default).")
        twin = TorchSeq2Seq if self.pairs else TorchCharLM      # the names are rnnkit's
        self.net = twin(model.config.to_dict()).to(self.device)
        named = dict(self.net.named_parameters())
        self.names = list(model.parameters())                 # rnnkit's order and names
        self.params = [named[k] for k in self.names]
        self._copy_in(model.parameters())
        if self.group.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.net, device_ids=ids)
            self.group._before_close.append(self._drop_ddp)
        else:
            self.ddp = self.net
        reference = config.make_optimizer({"w": np.zeros(1)})       # its name and hyper-parameters
        self._opt_name, self._hyper = reference.name, reference.hyperparameters()
        self.opt = self._torch_optimizer()
        self.step_count = 0
        self._pending = None
        self._seed_generators(0)

    def _drop_ddp(self):
        """Release DDP's reducer while its process group still exists (an error may leave it
        waiting for a backward, and a traceback may keep the engine alive)."""
        self.ddp = self.net
        self._pending = None

    # -- processes / description -----------------------------------------------------------
    def device_name(self) -> str:
        return str(self.device)

    def describe(self) -> str:
        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        return f"torch {torch.__version__} on {where}, {self.group.describe()}"

    @property
    def uses_dropout(self) -> bool:
        cfg = self.model.config
        return (cfg.dropout > 0 and cfg.num_layers > 1) or any(
            getattr(cfg, k, 0) for k in ("input_dropout", "output_dropout", "recurrent_dropout",
                                         "weight_drop", "embedding_dropout"))

    # -- weights ---------------------------------------------------------------------------
    def _copy_in(self, arrays: dict) -> None:
        with torch.no_grad():
            for k, p in zip(self.names, self.params):
                p.copy_(torch.from_numpy(np.ascontiguousarray(arrays[k])).to(p.dtype))

    def state_dict(self):
        return {k: p.detach().cpu().numpy().copy() for k, p in zip(self.names, self.params)}

    def load_state_dict(self, state):
        self.model.load_state_dict(state)                  # checks names, shapes, values
        self._copy_in(self.model.parameters())

    def sync_model(self):
        params = self.model.parameters()
        for k, p in zip(self.names, self.params):
            params[k][...] = p.detach().cpu().numpy()

    # -- optimizer ---------------------------------------------------------------------------
    def _torch_optimizer(self):
        kw = dict(self._hyper)
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        cls = getattr(torch.optim, OPTIMIZERS[self._opt_name].__name__)     # the same class names
        return cls(self.params, foreach=False, **kw)

    def _reference(self):
        """rnnkit's optimizer over NumPy copies of the weights: the checkpoint format."""
        return get_optimizer(self._opt_name, self.state_dict(), **self._hyper)

    def optimizer_state(self):
        ref = self._reference()
        for k, p in zip(self.names, self.params):
            st = self.opt.state.get(p, {})
            for s, arrays in ref.state.items():
                if st.get(s) is not None:
                    arrays[k][...] = st[s].detach().cpu().numpy()
        ref.step_count = self.step_count
        return ref.state_dict()

    def load_optimizer_state(self, arrays, meta):
        ref = self._reference()
        ref.load_state_dict(arrays, meta)                  # checks class, hyper, names, shapes
        self._opt_name, self._hyper = ref.name, ref.hyperparameters()
        self.opt = self._torch_optimizer()
        self.step_count = ref.step_count
        if self.step_count == 0 and self._opt_name not in ("adagrad",):
            return                                         # torch creates the state lazily
        for k, p in zip(self.names, self.params):
            st = {s: torch.from_numpy(a[k].copy()).to(self.device) for s, a in ref.state.items()}
            if self._opt_name in _TORCH_STEP:
                st["step"] = torch.tensor(float(self.step_count), dtype=_scalar_dtype())
            self.opt.state[p] = st

    # -- data --------------------------------------------------------------------------------
    def _columns(self, n: int) -> tuple:
        g = self.group
        return n * g.rank // g.world_size, n * (g.rank + 1) // g.world_size

    def _my_columns(self, y_all, training: bool):
        """``(a, b, count)``: this process's columns [a, b) of a global batch whose targets
        are ``y_all`` (T, n), and the global number of targets; an empty share is refused in
        training (every process must run a backward for DDP)."""
        count = int(np.count_nonzero(y_all != IGNORE_INDEX))
        n = y_all.shape[1]
        a, b = self._columns(n)
        if a == b and training:
            raise DataError(f"a batch of {n} sequence(s) cannot be shared by "
                            f"{self.group.world_size} processes; every process needs at least "
                            f"one: raise --batch-size to {self.group.world_size} or more.")
        return a, b, count

    def _pairs_slice(self, batch, training: bool):
        """This process's columns of a global pairs batch as tensors: ``((src, x, src_lengths),
        y, count)``, cut to the longest source and target of the share (the rest is padding,
        masked either way); the inputs are None for an empty share; ``count`` is global."""
        y_all = np.asarray(batch.y)
        a, b, count = self._my_columns(y_all, training)
        if a == b:
            return None, None, count
        src_lengths = np.asarray(batch.src_lengths)[a:b]
        S, T = int(src_lengths.max()), int(np.asarray(batch.lengths)[a:b].max())
        dev = self.device
        src, x, y = (torch.from_numpy(np.ascontiguousarray(arr, dtype=np.int64)).to(dev) for arr in
                     (np.asarray(batch.src)[:S, a:b], np.asarray(batch.x)[:T, a:b], y_all[:T, a:b]))
        return (src, x, src_lengths), y, count

    def _slice(self, batch, training: bool):
        """This process's columns of a global batch as tensors: ``(x, y, lengths, count)``;
        ``x`` is None for an empty slice; ``count`` is the global number of targets."""
        y_all = np.asarray(batch.y)
        a, b, count = self._my_columns(y_all, training)
        if a == b:
            return None, None, None, count
        x, y = np.asarray(batch.x)[:, a:b], y_all[:, a:b]
        lengths = getattr(batch, "lengths", None)
        if lengths is not None:
            lengths = np.asarray(lengths)[a:b]
            T = int(lengths.max())
            x, y = x[:T], y[:T]
            lengths = torch.from_numpy(lengths.astype(np.int64))
        dev = self.device
        return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64)).to(dev),
                torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(dev), lengths, count)

    # -- one step ----------------------------------------------------------------------------
    def forward(self, source, step, carry):
        error, local, count, tokens, state = None, 0.0, 0, 0, None
        try:
            batch, reset = source.batch(step)
            if reset or not source.carries_state:
                carry = None
            tokens = source.tokens_in(batch)
            self.net.train()
            if self.pairs:
                inputs, y, count = self._pairs_slice(batch, training=True)
                logits, state = self.ddp(*inputs)[0], None
            else:
                x, y, lengths, count = self._slice(batch, training=True)
                logits, state = self.ddp(x, carry, lengths)
            total = _loss_sum(logits, y)
            self._pending = total * (self.group.world_size / max(count, 1))
            state = map_state(lambda t: t.detach(), state)
            local = float(total.detach())
        except Exception as e:   # noqa: BLE001 - agreed on below, raised in every process
            error = e
        total = self.group.allreduce([local], error)[0]
        return LossResult(total / max(count, 1), count, state), tokens

    def discard(self):
        self._pending = None

    def _norm(self, grads) -> float:
        """rnnkit's global 2-norm (:func:`rnnkit.optim.global_norm`): float64, per-array dot
        products summed in order, rescaled when the sum of squares overflows."""
        flat = [g.reshape(-1).to(torch.float64) for g in grads]
        total = math.sqrt(sum(torch.stack([torch.dot(f, f) for f in flat]).tolist()))
        if math.isinf(total) and all(bool(torch.isfinite(f).all()) for f in flat):
            scale = max(float(f.abs().max()) for f in flat)
            total = scale * math.sqrt(sum(float(torch.dot(f / scale, f / scale)) for f in flat))
        return total

    def update(self, lr):
        cfg = self.config
        self._pending.backward()
        self._pending = None
        grads = [p.grad for p in self.params]
        norm = self._norm(grads)
        if math.isfinite(norm):
            if cfg.clip:
                coef = cfg.clip / (norm + 1e-6)
                if coef < 1.0:
                    for g in grads:
                        g.mul_(coef)
            if cfg.clip_value:
                for g in grads:
                    g.clamp_(-cfg.clip_value, cfg.clip_value)
        else:
            self.opt.zero_grad(set_to_none=True)
            return norm, True
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        self.step_count += 1
        finite = bool(torch.stack([torch.isfinite(p).all() for p in self.params]).all())
        self.opt.zero_grad(set_to_none=True)
        return norm, finite

    def detach(self, carry):
        return map_state(lambda t: t.detach(), carry)

    def evaluate(self, source):
        net, error = self.net, None
        was_training = net.training
        net.eval()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count, carry = 0, None
        try:
            with torch.no_grad():
                for b in source.eval_batches():
                    if self.pairs:
                        inputs, y, n = self._pairs_slice(b, training=False)
                        count += n
                        if inputs is not None:
                            total += _loss_sum(net(*inputs)[0], y).to(torch.float64)
                        continue
                    x, y, lengths, n = self._slice(b, training=False)
                    count += n
                    if x is None:
                        continue
                    logits, state = net(x, carry, lengths)
                    total += _loss_sum(logits, y).to(torch.float64)
                    carry = state if source.carries_state else None
            local = float(total)
        except Exception as e:   # noqa: BLE001 - agreed on below
            error, local = e, 0.0
        finally:
            net.train(was_training)
        return self.group.allreduce([local], error)[0] / max(count, 1)

    # -- carried state -----------------------------------------------------------------------
    def carry_to_numpy(self, carry):
        local = None if carry is None else tuple(t.detach().cpu().numpy() for t in state_arrays(carry))
        parts = self.group.all_gather(local) if self.group.world_size > 1 else [local]
        if any(p is None for p in parts):
            return None
        return state_from_arrays(tuple(np.concatenate([p[i] for p in parts], axis=1)
                                       for i in range(len(parts[0]))))

    def carry_from_numpy(self, state):
        if state is None:
            return None
        arrays = state_arrays(state)
        a, b = self._columns(arrays[0].shape[1])
        return state_from_arrays(tuple(torch.from_numpy(np.ascontiguousarray(x[:, a:b])).to(self.device)
                                       for x in arrays))

    # -- generators --------------------------------------------------------------------------
    def _seed_generators(self, step: int) -> None:
        seq = np.random.SeedSequence([int(self.config.seed) & (2**63 - 1), int(step), self.group.rank])
        torch.manual_seed(int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1)))

    def _local_rng(self) -> dict:
        out = {"cpu": torch.get_rng_state().numpy().copy()}
        if self.device.type == "cuda":
            out["cuda"] = torch.cuda.get_rng_state(self.device).numpy().copy()
        return out

    def rng_state(self):
        parts = self.group.all_gather(self._local_rng())
        return {}, {f"torch_rng.{kind}.{r}": a for r, p in enumerate(parts) for kind, a in p.items()}

    def load_rng_state(self, json, arrays, saved_engine, step):
        same = (saved_engine.get("name") == "torch"
                and int(saved_engine.get("world_size", 1) or 1) == self.group.world_size
                and str(saved_engine.get("device", "cpu")).split(":")[0] == self.device.type)
        mine = {kind: arrays.get(f"torch_rng.{kind}.{self.group.rank}") for kind in self._local_rng()}
        if same and all(a is not None and a.dtype == np.uint8 and a.ndim == 1 for a in mine.values()):
            try:
                torch.set_rng_state(torch.from_numpy(mine["cpu"].copy()))
                if "cuda" in mine:
                    torch.cuda.set_rng_state(torch.from_numpy(mine["cuda"].copy()), self.device)
                return True
            except RuntimeError:
                pass                                       # damaged: start a fresh stream
        self._seed_generators(step)
        return False

    # -- rollback ----------------------------------------------------------------------------
    def snapshot(self):
        params = [p.detach().clone() for p in self.params]
        state = {p: {k: v.clone() if torch.is_tensor(v) else v for k, v in st.items()}
                 for p, st in self.opt.state.items()}
        return params, state, self.step_count

    def restore(self, snapshot):
        params, state, step_count = snapshot
        with torch.no_grad():
            for p, v in zip(self.params, params):
                p.copy_(v)
        self.opt.state = defaultdict(dict, {p: {k: v.clone() if torch.is_tensor(v) else v
                                                for k, v in st.items()} for p, st in state.items()})
        self.step_count = step_count

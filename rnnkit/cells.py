"""The recurrent cells: one registry of cell kinds, and the gate math of one time step.

Everything rnnkit knows about a kind of cell is written once, in :data:`CELLS`: its names, its
PyTorch mode, its gate blocks in PyTorch's row order, where ONNX wants those blocks, whether it
has a cell state, and the class with its gate math. Layers, models, the checkpoint checks, the
torch and ONNX converters, the plots and the benchmarks all ask :func:`cell_spec`; adding a
cell kind is one :class:`CellSpec` entry plus a :class:`Cell` subclass.

The cells are stateless strategy objects used by the generic unroll in :mod:`rnnkit.sequence`.
They only hold the *gate math*; everything shared (input projection for all steps, the
recurrent product, masking for ``lengths``, weight gradients over all steps) lives once in the
unroll.

Notation (PyTorch's, time-major, one direction of one layer):

* ``x_t`` (N, D) input, ``h_{t-1}`` (N, H) previous hidden state, ``c_{t-1}`` LSTM cell state.
* ``xp_t = x_t W_ih^T + b_x``   (N, G*H) input projection, computed for all t at once.
* ``hp_t = h_{t-1} W_hh^T``     (N, G*H) recurrent projection, one product per step.

::

    RNN (tanh or relu):   h_t = act(xp_t + hp_t)                 with b_x = b_ih + b_hh
    LSTM:                 [i, f, g, o] = [s, s, tanh, s](xp_t + hp_t),   b_x = b_ih + b_hh
                          c_t = f * c_{t-1} + i * g ;  h_t = o * tanh(c_t)
    GRU:                  [r, z] = s(xp_t[:2H] + hp_t[:2H]),  b_x = b_ih + [b_hr, b_hz, 0]
                          n = tanh(xp_t[2H:] + r * (hp_t[2H:] + b_hn))
                          h_t = (1 - z) * n + z * h_{t-1}

Step contract. The unroll hands the cell one :class:`Step` per time step: views of
preallocated arrays, so a step allocates nothing.

* ``forward_step(s, w)``: ``s.g`` holds ``xp_t`` (a slab of the whole-sequence gate array) and
  ``s.hp`` the recurrent projection; the cell overwrites ``s.g`` with the *activated* gates
  (the cache for backward), writes ``s.h`` (and ``s.c``) and, if it keeps one, its per-step
  cache slab ``s.keep``. ``w`` is the layer's :class:`~rnnkit.sequence.Prepared` weights.
* ``backward_step(s, dh, dc, ws)``: overwrites ``s.g`` with the gradient of the
  pre-activations on the input side, so the gate array turns into ``dG`` in place and the
  weight gradients are one product over all steps afterwards. It may overwrite (consume)
  ``dh`` and ``dc`` and returns ``(dh_direct, dc_prev)``; ``dc_prev`` may be ``dc`` itself.

Sigmoid gates are computed with one ``tanh`` per step over the whole gate slab:
``s(a) = 0.5 tanh(0.5 a) + 0.5``. :func:`rnnkit.sequence.prepare` multiplies the rows of
``W_ih``, ``W_hh`` and the input bias by :meth:`Cell.gate_scale` (0.5 on sigmoid rows, 1 on
tanh rows) once, so the step computes ``tanh`` of the whole (N, G*H) slab and one affine
``a * t + b`` (vectors of length G*H) turns the sigmoid rows into sigmoids. ``w.b_hh`` is
never scaled (GRU's ``b_hn`` sits on a tanh row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError


class Step:
    """Views of one time step, reused by the unroll for every step (no allocation).

    ``g`` (N, G*H) gates, ``hp`` (N, G*H) recurrent projection, ``h_prev``/``h`` (N, H) hidden
    states, ``c_prev``/``c`` (N, H) cell states (None without one), ``keep`` (N, H) the cell's
    own per-step cache slab (None if it keeps none).
    """

    __slots__ = ("g", "hp", "h_prev", "c_prev", "h", "c", "keep")

    def __init__(self):
        self.g = self.hp = self.h_prev = self.c_prev = self.h = self.c = self.keep = None


class Cell:
    """Gate math of one kind of cell (see the module docstring for the contract).

    A cell is made by its :class:`CellSpec` (``spec.new_cell()``) and reads its facts there.
    """

    #: True when the cell keeps a per-step cache array for backward (``Step.keep``)
    keeps = False
    #: name of a compiled N = 1 inference loop in ``rnnkit._jit``, if there is one
    jit_n1 = None
    #: name of the fused compiled forward/backward step kernels in ``rnnkit._jit``, if there are
    #: any (used only for the class that names them, not for its subclasses)
    jit_step = None

    def __init__(self, spec: CellSpec):
        self.spec = spec

    def input_bias(self, b_ih, b_hh):
        """Bias folded into the input projection of all steps (None when there is no bias)."""
        if b_ih is None:
            return None
        return b_ih + b_hh

    def gate_scale(self, H, dtype):
        """(G*H,) factors applied to the gate rows of the weights and input bias: 0.5 on the
        blocks of :attr:`CellSpec.sigmoid_gates`, 1 elsewhere (see the module docstring); None
        when the cell has no sigmoid gate."""
        spec = self.spec
        if not spec.sigmoid_gates:
            return None
        return np.repeat(np.array([0.5 if g in spec.sigmoid_gates else 1.0
                                   for g in spec.gate_names], dtype), H)

    def constants(self, H, dtype) -> dict:
        """Arrays the step needs that depend only on the sizes (stored with the weights)."""
        return {}

    def new_workspace(self, N, H, dtype):
        """Scratch (N, H) buffers reused by every backward step (no per-step allocation)."""
        return {}

    def recurrent_parts(self, G, keep, H):
        """Gradient slabs on the recurrent side and the rows of W_hh each one multiplies.

        Returns a list of (array (T, N, k), row slice of W_hh). For RNN/LSTM the recurrent
        pre-activation gradient equals the input-side one (a single part); GRU's candidate gate
        differs (r multiplies the recurrent term) so it has two parts.
        """
        return [(G, slice(None))]

    def keep_width(self, H: int) -> int:
        """Width of the per-step cache slab ``Step.keep`` (N, width) when :attr:`keeps`."""
        return H

    @classmethod
    def extra_parameter_shapes(cls, H: int) -> dict:
        """Parameters of a direction beyond PyTorch's four (name -> shape; none here)."""
        return {}

    def prepared_extra(self, extra: dict, b_ih, b_hh) -> dict:
        """The :attr:`~rnnkit.sequence.Prepared.extra` weights of the step from the
        direction's extra parameters (:meth:`extra_parameter_shapes`) and its biases."""
        return extra

    def finish_gradients(self, grads: dict, ws: dict) -> None:
        """Complete a direction's ``grads`` after the backward loop (in place; nothing here)."""


class RNNCell(Cell):
    """Elman cell: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or relu)."""

    def __init__(self, spec):
        super().__init__(spec)
        self.nonlinearity = spec.layer_kwargs["nonlinearity"]

    def forward_step(self, s, w):
        g = s.g
        g += s.hp                                 # (N, H) pre-activation
        if self.nonlinearity == "tanh":
            np.tanh(g, out=g)
        else:
            np.maximum(g, 0, out=g)
        s.h[...] = g                              # the activated value is both gate and state

    def backward_step(self, s, dh, dc, ws):
        g = s.g                                   # holds h_t; dpre = dh * act'(pre)
        if self.nonlinearity == "tanh":
            np.multiply(g, g, out=g)              # h^2
            np.subtract(1, g, out=g)              # 1 - h^2
        else:
            np.greater(g, 0, out=g)  # type: ignore[call-overload]
        g *= dh                                   # (N, H)
        return None, None


class LSTMCell(Cell):
    """LSTM cell with PyTorch's gate order i, f, g, o (no peepholes, no projection).

    Forward::

        i = s(Wi x + bi + Ui h + ci)    f = s(...)    g = tanh(...)    o = s(...)
        c' = f * c + i * g              h' = o * tanh(c')

    With the sigmoid rows prescaled by 0.5 (:meth:`gate_scale`) the four gates are one
    ``tanh`` over the (N, 4H) slab followed by ``a * t + b`` with a = b = 0.5 on i, f, o and
    a = 1, b = 0 on g. ``keep`` holds ``tanh(c')``.

    Backward, with dh, dc the gradients arriving at h', c'::

        dc_tot = dc + dh * o * (1 - tanh(c')^2)
        do = dh * tanh(c') * o (1 - o)      di = dc_tot * g * i (1 - i)
        df = dc_tot * c * f (1 - f)         dg = dc_tot * i * (1 - g^2)
        dc_prev = dc_tot * f ;  dh_prev = [di, df, dg, do] @ W_hh    (done by the unroll)
    """

    keeps = True
    jit_n1 = "lstm_n1"
    jit_step = "lstm_step"

    def constants(self, H, dtype):
        a = self.gate_scale(H, dtype)             # (4H,) affine after the tanh
        return {"a": a, "b": np.where(a == 1.0, 0.0, 0.5).astype(dtype)}

    def new_workspace(self, N, H, dtype):
        return {"dct": np.empty((N, H), dtype), "tmp": np.empty((N, H), dtype)}

    def forward_step(self, s, w):
        g, c, tc = s.g, s.c, s.keep
        H = c.shape[1]
        g += s.hp                                 # (N, 4H) prescaled pre-activations
        np.tanh(g, out=g)
        g *= w.const["a"]
        g += w.const["b"]                         # [i, f, g, o] activated
        i, f, gg, o = g[:, :H], g[:, H: 2 * H], g[:, 2 * H: 3 * H], g[:, 3 * H:]
        np.multiply(f, s.c_prev, out=c)
        np.multiply(i, gg, out=tc)
        c += tc                                   # c' = f c + i g
        np.tanh(c, out=tc)
        np.multiply(o, tc, out=s.h)               # h' = o tanh(c')

    def backward_step(self, s, dh, dc, ws):
        g, tc = s.g, s.keep                       # activated gates, tanh(c')
        H = tc.shape[1]
        i, f, gg, o = g[:, :H], g[:, H: 2 * H], g[:, 2 * H: 3 * H], g[:, 3 * H:]
        dct, tmp = ws["dct"], ws["tmp"]
        dh *= o                                   # dh o            (dh is consumed)
        np.multiply(tc, tc, out=dct)
        np.subtract(1, dct, out=dct)
        dct *= dh
        if dc is not None:
            dct += dc                             # dc_tot = dc + dh o (1 - tanh^2 c')
        # do = (dh o) * tanh(c') * (1 - o)
        np.subtract(1, o, out=o)
        o *= tc
        o *= dh
        # dc_prev = dc_tot * f  (into dc's buffer when we own one)
        dc_prev = np.multiply(dct, f, out=dc) if dc is not None else dct * f
        # df = dc_tot * c_prev * f (1 - f)
        np.subtract(1, f, out=tmp)
        f *= tmp
        f *= s.c_prev
        f *= dct
        # di = dc_tot i * g (1 - i);  dg = dc_tot i * (1 - g^2)
        np.multiply(dct, i, out=tmp)              # dc_tot i
        np.subtract(1, i, out=i)
        i *= gg
        i *= tmp
        np.multiply(gg, gg, out=gg)
        np.subtract(1, gg, out=gg)
        gg *= tmp
        return None, dc_prev


class GRUCell(Cell):
    """GRU cell with PyTorch's equations and gate order r, z, n.

    Forward::

        r = s(W_ir x + b_ir + W_hr h + b_hr)          z = s(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  h' = (1 - z) * n + z * h

    ``keep`` holds ``W_hn h + b_hn``; backward overwrites it with the recurrent-side ``dn * r``.

    Backward, with dh the gradient arriving at h'::

        dn = dh (1 - z) (1 - n^2)          (input-side pre-activation gradient of n)
        dz = dh (h - n) z (1 - z)          dr = dn * (W_hn h + b_hn) * r (1 - r)
        recurrent-side gradient of the n rows: dn * r
        dh_prev = [dr, dz] @ W_h[rz] + (dn * r) @ W_hn + dh * z
    """

    keeps = True
    jit_step = "gru_step"

    def input_bias(self, b_ih, b_hh):
        if b_ih is None:
            return None
        H = b_ih.shape[0] // 3
        b = b_ih.copy()
        b[: 2 * H] += b_hh[: 2 * H]               # b_hn stays inside r * (...)
        return b

    def new_workspace(self, N, H, dtype):
        return {"dn": np.empty((N, H), dtype), "tmp": np.empty((N, H), dtype),
                "dh_direct": np.empty((N, H), dtype)}

    def recurrent_parts(self, G, keep, H):
        return [(G[:, :, : 2 * H], slice(0, 2 * H)), (keep, slice(2 * H, 3 * H))]

    def forward_step(self, s, w):
        g, hp, hn, h = s.g, s.hp, s.keep, s.h
        H = h.shape[1]
        if w.b_hh is not None:
            np.add(hp[:, 2 * H:], w.b_hh[2 * H:], out=hn)
        else:
            hn[...] = hp[:, 2 * H:]
        rz = g[:, : 2 * H]                        # prescaled by 0.5
        rz += hp[:, : 2 * H]
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5                                 # r, z
        r, z, n = g[:, :H], g[:, H: 2 * H], g[:, 2 * H:]
        np.multiply(r, hn, out=h)                 # h as scratch
        n += h
        np.tanh(n, out=n)
        np.subtract(s.h_prev, n, out=h)
        h *= z
        h += n                                    # h' = n + z (h - n)

    def backward_step(self, s, dh, dc, ws):
        g, hn = s.g, s.keep
        H = hn.shape[1]
        r, z, n = g[:, :H], g[:, H: 2 * H], g[:, 2 * H:]
        dn, tmp, dh_direct = ws["dn"], ws["tmp"], ws["dh_direct"]
        np.multiply(dh, z, out=dh_direct)         # (N, H)
        # dn_pre = dh (1 - z) (1 - n^2)
        np.multiply(n, n, out=dn)
        np.subtract(1, dn, out=dn)
        np.subtract(1, z, out=tmp)
        dn *= tmp
        dn *= dh
        # dz_pre = dh (h - n) z (1 - z)   (tmp holds 1 - z)
        tmp *= dh
        np.subtract(s.h_prev, n, out=n)           # n no longer needed
        tmp *= n
        np.multiply(tmp, z, out=z)
        # dr_pre = dn * hn * r (1 - r)
        np.subtract(1, r, out=tmp)
        tmp *= hn
        tmp *= dn
        np.multiply(dn, r, out=hn)                # recurrent-side n gradient
        r *= tmp
        n[...] = dn
        return dh_direct, None


# ============================================================================================
# Layer-normalised cells (Ba, Kiros & Hinton 2016)
# ============================================================================================

#: LayerNorm's epsilon (PyTorch's ``torch.nn.LayerNorm`` default).
LN_EPS = 1e-5


def _ln_forward(z, out):
    """``out = (z - mean) / sqrt(var + eps)`` over the last axis; returns ``1 / sqrt(var + eps)``
    (N, 1)."""
    np.subtract(z, z.mean(axis=1, keepdims=True), out=out)
    rstd = 1.0 / np.sqrt(np.mean(out * out, axis=1, keepdims=True) + LN_EPS)
    out *= rstd
    return rstd


def _ln_backward(d_hat, x_hat, rstd):
    """The gradient on ``z`` of :func:`_ln_forward` from the gradient ``d_hat`` on its output."""
    return rstd * (d_hat - d_hat.mean(axis=1, keepdims=True)
                   - x_hat * np.mean(d_hat * x_hat, axis=1, keepdims=True))


def _sigmoid(a, out):
    np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


class _LayerNormCell(Cell):
    """What the layer-normalised cells share: no prescaled rows and no folded bias (``s.g``
    arrives as ``x W_ih^T``, ``s.hp`` as ``h W_hh^T``), a per-step cache, and the recurrent
    pre-activation gradient in the cache's second G*H slab."""

    keeps = True

    def gate_scale(self, H, dtype):
        return None

    def input_bias(self, b_ih, b_hh):
        return None

    def recurrent_parts(self, G, keep, H):
        GH = G.shape[2]
        return [(keep[:, :, GH: 2 * GH], slice(None))]


class LayerNormLSTMCell(_LayerNormCell):
    """LSTM with layer normalisation (Ba et al. 2016, eqs. 20-22), PyTorch's gate order::

        [i, f, g, o] = [s, s, tanh, s](LN(x W_ih^T) * ln_weight_ih + LN(h W_hh^T) * ln_weight_hh
                                       + b_ih + b_hh)
        c' = f * c + i * g          h' = o * tanh(LN(c') * ln_weight_c + ln_bias_c)

    ``LN(z) = (z - mean(z)) / sqrt(var(z) + 1e-5)`` over all the G*H pre-activations of one
    sequence (the c' one over its H units). The gains start at 1 and ``ln_bias_c`` at 0 (the
    biases ``b_ih``/``b_hh`` are the shifts of the gate norms). No prescaling, no folded bias:
    :meth:`gate_scale` and :meth:`input_bias` are None, so ``s.g`` arrives as ``x W_ih^T``.
    ``keep`` (N, 2 G*H + 2 H + 3): the normalised input and recurrent projections, the
    normalised c', tanh of its affine, and the three ``1 / std``; backward turns the recurrent
    slab into the recurrent pre-activation gradient (:meth:`recurrent_parts`).
    """


    def keep_width(self, H):
        return 2 * self.spec.num_gates * H + 2 * H + 3

    def prepared_extra(self, extra, b_ih, b_hh):
        return {**extra, "bias": None if b_ih is None else b_ih + b_hh}

    @classmethod
    def extra_parameter_shapes(cls, H):
        return {"ln_weight_ih": (4 * H,), "ln_weight_hh": (4 * H,), "ln_weight_c": (H,),
                "ln_bias_c": (H,)}

    def new_workspace(self, N, H, dtype):
        ws = {k: np.zeros(s, dtype) for k, s in self.extra_parameter_shapes(H).items()}
        ws["bias"] = np.zeros(4 * H, dtype)
        return ws


    def _views(self, k, GH, H):
        return (k[:, :GH], k[:, GH: 2 * GH], k[:, 2 * GH: 2 * GH + H],
                k[:, 2 * GH + H: 2 * GH + 2 * H], k[:, 2 * GH + 2 * H:])

    def forward_step(self, s, w):
        g, e = s.g, w.extra
        H = s.c.shape[1]
        GH = 4 * H
        xx, xh, ch, tc, rs = self._views(s.keep, GH, H)
        rs[:, 0:1] = _ln_forward(g, xx)
        rs[:, 1:2] = _ln_forward(s.hp, xh)
        np.multiply(xx, e["ln_weight_ih"], out=g)
        g += xh * e["ln_weight_hh"]
        if e["bias"] is not None:
            g += e["bias"]
        _sigmoid(g[:, :2 * H], g[:, :2 * H])
        np.tanh(g[:, 2 * H: 3 * H], out=g[:, 2 * H: 3 * H])
        _sigmoid(g[:, 3 * H:], g[:, 3 * H:])
        i, f, gg, o = g[:, :H], g[:, H: 2 * H], g[:, 2 * H: 3 * H], g[:, 3 * H:]
        np.multiply(f, s.c_prev, out=s.c)
        s.c += i * gg                                         # c' = f c + i g
        rs[:, 2:3] = _ln_forward(s.c, ch)
        np.multiply(ch, e["ln_weight_c"], out=tc)
        tc += e["ln_bias_c"]
        np.tanh(tc, out=tc)
        np.multiply(o, tc, out=s.h)                           # h' = o tanh(LN(c'))

    def backward_step(self, s, dh, dc, ws):
        g, e = s.g, ws["w"]
        H = s.c_prev.shape[1]
        GH = 4 * H
        xx, xh, ch, tc, rs = self._views(s.keep, GH, H)
        i, f, gg, o = g[:, :H], g[:, H: 2 * H], g[:, 2 * H: 3 * H], g[:, 3 * H:]
        dcn = dh * o * (1 - tc * tc)                          # on LN(c') * w_c + b_c
        ws["ln_weight_c"] += (dcn * ch).sum(axis=0)
        ws["ln_bias_c"] += dcn.sum(axis=0)
        dct = _ln_backward(dcn * e["ln_weight_c"], ch, rs[:, 2:3])
        if dc is not None:
            dct += dc
        dpre = np.empty_like(g)
        dpre[:, :H] = dct * gg * i * (1 - i)
        dpre[:, H: 2 * H] = dct * s.c_prev * f * (1 - f)
        dpre[:, 2 * H: 3 * H] = dct * i * (1 - gg * gg)
        dpre[:, 3 * H:] = dh * tc * o * (1 - o)
        dc_prev = np.multiply(dct, f, out=dc) if dc is not None else dct * f
        ws["bias"] += dpre.sum(axis=0)
        ws["ln_weight_ih"] += (dpre * xx).sum(axis=0)
        ws["ln_weight_hh"] += (dpre * xh).sum(axis=0)
        xh[...] = _ln_backward(dpre * e["ln_weight_hh"], xh, rs[:, 1:2])   # recurrent side
        g[...] = _ln_backward(dpre * e["ln_weight_ih"], xx, rs[:, 0:1])
        return None, dc_prev

    def finish_gradients(self, grads, ws):
        for k in self.extra_parameter_shapes(1):
            grads[k] = ws[k]
        if "bias_ih" in grads:
            grads["bias_ih"] = ws["bias"]
            grads["bias_hh"] = ws["bias"].copy()


class LayerNormGRUCell(_LayerNormCell):
    """GRU with layer normalisation, PyTorch's equations and gate order r, z, n::

        a_x = LN(x W_ih^T) * ln_weight_ih + b_ih        a_h = LN(h W_hh^T) * ln_weight_hh + b_hh
        r, z = s(a_x[r, z] + a_h[r, z])      n = tanh(a_x[n] + r * a_h[n])
        h' = (1 - z) * n + z * h

    (LN as in :class:`LayerNormLSTMCell`, over the 3H pre-activations of each projection.)
    ``keep`` (N, 2 G*H + H + 2): the two normalised projections, ``a_h[n]``, the two
    ``1 / std``.
    """


    def keep_width(self, H):
        return 2 * self.spec.num_gates * H + H + 2

    def prepared_extra(self, extra, b_ih, b_hh):
        return {**extra, "bias_ih": b_ih, "bias_hh": b_hh}

    @classmethod
    def extra_parameter_shapes(cls, H):
        return {"ln_weight_ih": (3 * H,), "ln_weight_hh": (3 * H,)}

    def new_workspace(self, N, H, dtype):
        ws = {k: np.zeros(s, dtype) for k, s in self.extra_parameter_shapes(H).items()}
        ws["bias_ih"], ws["bias_hh"] = np.zeros(3 * H, dtype), np.zeros(3 * H, dtype)
        return ws


    def _views(self, k, GH, H):
        return k[:, :GH], k[:, GH: 2 * GH], k[:, 2 * GH: 2 * GH + H], k[:, 2 * GH + H:]

    def forward_step(self, s, w):
        g, e = s.g, w.extra
        H = s.h.shape[1]
        GH = 3 * H
        xx, xh, ahn, rs = self._views(s.keep, GH, H)
        rs[:, 0:1] = _ln_forward(g, xx)
        rs[:, 1:2] = _ln_forward(s.hp, xh)
        ah = xh * e["ln_weight_hh"]
        np.multiply(xx, e["ln_weight_ih"], out=g)
        if e["bias_ih"] is not None:
            g += e["bias_ih"]
            ah += e["bias_hh"]
        g[:, :2 * H] += ah[:, :2 * H]
        _sigmoid(g[:, :2 * H], g[:, :2 * H])                  # r, z
        ahn[...] = ah[:, 2 * H:]
        r, z, n = g[:, :H], g[:, H: 2 * H], g[:, 2 * H:]
        n += r * ahn
        np.tanh(n, out=n)
        np.subtract(s.h_prev, n, out=s.h)
        s.h *= z
        s.h += n                                              # h' = n + z (h - n)

    def backward_step(self, s, dh, dc, ws):
        g, e = s.g, ws["w"]
        H = s.h_prev.shape[1]
        GH = 3 * H
        xx, xh, ahn, rs = self._views(s.keep, GH, H)
        r, z, n = g[:, :H], g[:, H: 2 * H], g[:, 2 * H:]
        dh_direct = dh * z
        dax = np.empty_like(g)
        dn = dax[:, 2 * H:]
        np.multiply(dh * (1 - z), 1 - n * n, out=dn)
        dax[:, H: 2 * H] = dh * (s.h_prev - n) * z * (1 - z)
        dax[:, :H] = dn * ahn * r * (1 - r)
        dah = dax.copy()
        dah[:, 2 * H:] *= r
        ws["bias_ih"] += dax.sum(axis=0)
        ws["bias_hh"] += dah.sum(axis=0)
        ws["ln_weight_ih"] += (dax * xx).sum(axis=0)
        ws["ln_weight_hh"] += (dah * xh).sum(axis=0)
        xh[...] = _ln_backward(dah * e["ln_weight_hh"], xh, rs[:, 1:2])
        g[...] = _ln_backward(dax * e["ln_weight_ih"], xx, rs[:, 0:1])
        return dh_direct, None

    def finish_gradients(self, grads, ws):
        for k in self.extra_parameter_shapes(1):
            grads[k] = ws[k]
        if "bias_ih" in grads:
            grads["bias_ih"], grads["bias_hh"] = ws["bias_ih"], ws["bias_hh"]


# ============================================================================================
# The registry
# ============================================================================================

def param_suffix(layer: int, reverse: bool = False) -> str:
    """PyTorch's suffix of a recurrent stack's parameter names: ``_l{layer}``, plus
    ``_reverse`` for the backward direction (``weight_ih_l1_reverse``)."""
    return f"_l{layer}" + ("_reverse" if reverse else "")


@dataclass(frozen=True)
class CellSpec:
    """Everything rnnkit knows about one kind of recurrent cell.

    ``name`` is the spelling in model configs and on the command line; ``aliases`` are other
    accepted spellings (case-insensitive), ``torch_mode`` is ``torch.nn.RNNBase.mode``.
    ``layer`` names the class in :mod:`rnnkit.nn` *and* in ``torch.nn`` that builds such a
    layer, with ``layer_kwargs`` (e.g. ``nonlinearity``). ``gate_names`` are the fused gate
    blocks of ``weight_ih``/``weight_hh`` in PyTorch's row order (their count is ``G``).
    ``onnx_op`` is the native ONNX operator and ``onnx_gate_order`` the PyTorch block that goes
    to each ONNX gate slot, in ONNX's order; ``onnx_attrs`` are that node's extra attributes.
    ``sigmoid_gates`` are the gates with values in [0, 1] (the others are tanh, or the state).
    ``cell_state``: the state is the tuple ``(h, c)`` instead of ``h``. ``cell_class`` holds
    the gate math. ``forget_gate``: the gate whose value 1 keeps the previous state (LSTM's
    forget gate, GRU's update gate), the one a ``forget_bias`` initialises; "" for none.
    ``layer_norm``: a layer-normalised cell (the layer's ``layer_norm=True``; its extra
    parameters come from :meth:`Cell.extra_parameter_shapes`; PyTorch and ONNX have no such
    layer, so ``torch_mode`` is rnnkit's own name and the converters refuse it).
    ``projectable``: the layer takes ``proj_size`` (PyTorch's LSTMP:
    ``h_t = W_hr (o * tanh(c_t))``, a ``weight_hr`` (P, H) per direction of each layer).
    """

    name: str
    torch_mode: str
    layer: str
    gate_names: tuple
    onnx_op: str
    onnx_gate_order: tuple
    cell_state: bool
    cell_class: type
    sigmoid_gates: tuple = ()
    aliases: tuple = ()
    layer_kwargs: dict = field(default_factory=dict)
    onnx_attrs: dict = field(default_factory=dict)
    projectable: bool = False
    forget_gate: str = ""
    layer_norm: bool = False

    @property
    def num_gates(self) -> int:
        return len(self.gate_names)

    def new_cell(self) -> Cell:
        return self.cell_class(self)

    @property
    def cell_layer(self) -> str:
        """The single-step class in :mod:`rnnkit.nn` *and* ``torch.nn`` (``LSTMCell``, ...):
        the layer's name followed by ``Cell``, built with the same ``layer_kwargs``."""
        return self.layer + "Cell"

    def parameter_shapes(self, input_size: int, hidden_size: int, bias: bool = True,
                         suffix: str = "", proj_size: int = 0) -> dict:
        """PyTorch's names and shapes of one direction of one layer (or of a cell):
        ``weight_ih`` (G*H, input_size), ``weight_hh`` (G*H, H), ``bias_ih``/``bias_hh``
        (G*H,), each name followed by ``suffix`` (e.g. ``_l0_reverse``); with ``proj_size`` P
        (a :attr:`projectable` cell) ``weight_hh`` is (G*H, P) and ``weight_hr`` (P, H) follows."""
        GH = self.num_gates * hidden_size
        shapes = {"weight_ih" + suffix: (GH, input_size),
                  "weight_hh" + suffix: (GH, proj_size or hidden_size)}
        if bias:
            shapes["bias_ih" + suffix] = (GH,)
            shapes["bias_hh" + suffix] = (GH,)
        if proj_size:
            shapes["weight_hr" + suffix] = (proj_size, hidden_size)
        for k, shape in self.cell_class.extra_parameter_shapes(hidden_size).items():
            shapes[k + suffix] = shape
        return shapes

    def num_parameters(self, input_size: int, hidden_size: int, bias: bool = True) -> int:
        """Parameters of one direction of one layer: ``G*H*(input_size + H + 2*bias)``."""
        return sum(int(np.prod(s)) for s in self.parameter_shapes(input_size, hidden_size, bias).values())


#: Cell kinds by config name, in the order shown to users.
CELLS: dict[str, CellSpec] = {spec.name: spec for spec in (
    CellSpec(name="lstm", torch_mode="LSTM", layer="LSTM",
             gate_names=("input", "forget", "candidate", "output"),
             sigmoid_gates=("input", "forget", "output"),
             onnx_op="LSTM", onnx_gate_order=(0, 3, 1, 2),          # ONNX i, o, f, c
             cell_state=True, cell_class=LSTMCell, projectable=True, forget_gate="forget"),
    CellSpec(name="gru", torch_mode="GRU", layer="GRU",
             gate_names=("reset", "update", "candidate"), sigmoid_gates=("reset", "update"),
             onnx_op="GRU", onnx_gate_order=(1, 0, 2),              # ONNX z, r, h
             onnx_attrs={"linear_before_reset": 1},                # PyTorch's r * (W_hn h + b_hn)
             cell_state=False, cell_class=GRUCell, forget_gate="update"),
    CellSpec(name="lstm_ln", torch_mode="LSTM_LN", layer="LSTM", aliases=("layernorm_lstm",),
             gate_names=("input", "forget", "candidate", "output"),
             sigmoid_gates=("input", "forget", "output"), layer_kwargs={"layer_norm": True},
             onnx_op="", onnx_gate_order=(), cell_state=True, cell_class=LayerNormLSTMCell,
             forget_gate="forget", layer_norm=True),
    CellSpec(name="gru_ln", torch_mode="GRU_LN", layer="GRU", aliases=("layernorm_gru",),
             gate_names=("reset", "update", "candidate"), sigmoid_gates=("reset", "update"),
             layer_kwargs={"layer_norm": True}, onnx_op="", onnx_gate_order=(),
             cell_state=False, cell_class=LayerNormGRUCell, forget_gate="update", layer_norm=True),
    CellSpec(name="rnn", torch_mode="RNN_TANH", layer="RNN", aliases=("rnn_tanh", "tanh"),
             gate_names=("hidden",), onnx_op="RNN", onnx_gate_order=(0,),
             layer_kwargs={"nonlinearity": "tanh"}, onnx_attrs={"activation": "Tanh"},
             cell_state=False, cell_class=RNNCell),
    CellSpec(name="rnn_relu", torch_mode="RNN_RELU", layer="RNN", aliases=("relu",),
             gate_names=("hidden",), onnx_op="RNN", onnx_gate_order=(0,),
             layer_kwargs={"nonlinearity": "relu"}, onnx_attrs={"activation": "Relu"},
             cell_state=False, cell_class=RNNCell),
)}

_LOOKUP = {}
for _spec in CELLS.values():
    for _key in (_spec.name, _spec.torch_mode, *_spec.aliases):
        _LOOKUP[_key.lower()] = _spec


def layer_norm_spec(spec: CellSpec) -> CellSpec:
    """The layer-normalised variant of a cell kind (``lstm`` -> ``lstm_ln``), a
    :class:`ConfigError` when it has none."""
    if spec.layer_norm:
        return spec
    ln = CELLS.get(spec.name + "_ln")
    if ln is None:
        kinds = ", ".join(repr(s.name) for s in CELLS.values() if s.layer_norm)
        raise ConfigError(f"expected a cell kind with a layer-normalised variant for "
                          f"layer_norm=True ({kinds}), got {spec.name!r}.")
    return ln


def cell_spec(cell) -> CellSpec:
    """The :class:`CellSpec` of a cell name, alias or PyTorch mode (any case), or of a spec.

    >>> cell_spec("LSTM").gate_names
    ('input', 'forget', 'candidate', 'output')
    """
    if isinstance(cell, CellSpec):
        return cell
    spec = _LOOKUP.get(cell.strip().lower()) if isinstance(cell, str) else None
    if spec is None:
        names = ", ".join(repr(n) for n in CELLS)
        raise ConfigError(f"expected a cell kind ({names}, or a PyTorch mode such as 'LSTM' or "
                          f"'RNN_TANH'), got {cell!r}.")
    return spec


def map_state(fn: Callable, state):
    """Apply ``fn`` to every array of a recurrent state: ``h``, or each of ``(h, c)``.

    >>> map_state(lambda a: a * 2, (np.ones(2), np.zeros(2)))
    (array([2., 2.]), array([0., 0.]))
    """
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(fn(a) for a in state)
    return fn(state)


def state_arrays(state) -> tuple:
    """The arrays of a recurrent state as a tuple: ``(h,)`` or ``(h, c)``; ``()`` for None."""
    if state is None:
        return ()
    return tuple(state) if isinstance(state, tuple) else (state,)


def state_from_arrays(arrays: tuple) -> object | None:
    """Inverse of :func:`state_arrays`: ``(h,)`` -> ``h``, ``(h, c)`` -> ``(h, c)``."""
    if not arrays:
        return None
    return arrays[0] if len(arrays) == 1 else tuple(arrays)

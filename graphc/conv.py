"""Convolution and pooling: ``gc.conv1d``, ``gc.conv2d``, ``gc.max_pool2d``, ``gc.avg_pool2d``.

PyTorch's layouts: x (N, C, H, W), w (O, C // groups, kh, kw); the batch dimension N
may be dynamic, the others are static.  Five ops of the op table:

* ``conv2d(x, w)`` and its two adjoints ``conv2d_input_grad(g, w)`` (the transposed
  convolution) and ``conv2d_weight_grad(x, g)``.  The three are one trilinear form
  ``T(x, w, g) = <g, conv2d(x, w)>`` differentiated in each argument, so the VJP of
  each is the other two and every derivative, to any order, is again these three ops;
  each is linear in each argument, so a JVP is the op of the tangents.
* ``max_pool2d_index(x)`` (int64, no gradient: the flat position, in its (H, W) plane,
  of each window's first maximum), ``pool_gather(x, idx)`` (what max-pooling takes)
  and ``pool_scatter(g, idx)`` (its adjoint: g added at those positions); gather and
  scatter are each other's adjoint.  ``max_pool2d(x)`` is ``pool_gather(x,
  max_pool2d_index(x))``: the forward pass finds the maxima once, the backward pass
  reuses them.
* ``avg_pool2d`` is a depthwise ``conv2d`` with weights 1 / (kh * kw) (PyTorch's default
  ``count_include_pad=True``: padded zeros count in the mean); ``conv1d`` is ``conv2d``
  on (N, C, 1, L).

Compiled code calls shared-runtime helpers: per sample and group an im2col matrix
(C/groups * kh * kw, Ho * Wo) and one BLAS product with the weights (``np.dot`` in
Numba; for the weight gradient against the transposed im2col matrix, for the input
gradient the weights' transpose times g, then col2im).  The NumPy implementations the
interpreter and the tape run are written independently (sliding windows and einsum)."""

from __future__ import annotations

import numbers

import numpy as np

from . import api, graph
from .graph import Expr
from .lowering import Code
from .ops import Op, register
from .shapes import ShapeError, format_shape

# ---------------------------------------------------------------------------------
# Compiled helpers (the shared runtime)
# ---------------------------------------------------------------------------------

_COLUMNS_INSIDE = '''
def _conv_columns_inside(wo, sw, off, w):
    """The output columns [lo, hi) whose input column ow*sw + off lies inside 0..w-1
    (im2col and col2im read or write only those)."""
    lo = 0
    while lo < wo and lo * sw + off < 0:
        lo += 1
    hi = wo
    while hi > lo and (hi - 1) * sw + off >= w:
        hi -= 1
    return lo, hi
'''

_IM2COL = '''
def _conv_im2col(x, n, c0, cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols):
    """cols[(c, i, j), (oh, ow)] = x[n, c0 + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw]
    (0 outside x)."""
    h = x.shape[2]
    w = x.shape[3]
    r = 0
    for c in range(cg):
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pl
                lo, hi = _conv_columns_inside(wo, sw, off, w)
                for oh in range(ho):
                    ih = oh * sh - pt + i * dh
                    base = oh * wo
                    if ih < 0 or ih >= h:
                        for ow in range(wo):
                            cols[r, base + ow] = 0
                    else:
                        for ow in range(lo):
                            cols[r, base + ow] = 0
                        for ow in range(lo, hi):
                            cols[r, base + ow] = x[n, c0 + c, ih, ow * sw + off]
                        for ow in range(hi, wo):
                            cols[r, base + ow] = 0
                r += 1
'''

_COL2IM = '''
def _conv_col2im(cols, dx, n, c0, cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo):
    """dx[n, c0 + c, ih, iw] += cols[(c, i, j), (oh, ow)]: im2col's adjoint."""
    h = dx.shape[2]
    w = dx.shape[3]
    r = 0
    for c in range(cg):
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pl
                lo, hi = _conv_columns_inside(wo, sw, off, w)
                for oh in range(ho):
                    ih = oh * sh - pt + i * dh
                    if ih >= 0 and ih < h:
                        base = oh * wo
                        for ow in range(lo, hi):
                            dx[n, c0 + c, ih, ow * sw + off] += cols[r, base + ow]
                r += 1
'''

_FORWARD = '''
def _conv2d_forward(x, w, sh, sw, pt, pl, dh, dw, groups, ho, wo):
    """conv2d: per sample and group, weights (og, K) @ im2col (K, ho * wo) by BLAS."""
    n_ = x.shape[0]
    o, cg, kh, kw = w.shape
    og = o // groups
    k = cg * kh * kw
    w3 = w.reshape((groups, og, k))
    out = np.empty((n_, groups, og, ho * wo), dtype=x.dtype)
    cols = np.empty((k, ho * wo), dtype=x.dtype)
    for n in range(n_):
        for g in range(groups):
            _conv_im2col(x, n, g * cg, cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols)
            np.dot(w3[g], cols, out[n, g])
    return out.reshape((n_, o, ho, wo))
'''

_INPUT_GRAD = '''
def _conv2d_input_grad(gy, w, sh, sw, pt, pl, dh, dw, groups, h, w_):
    """conv2d's adjoint in x: per sample and group, w.T (K, og) @ g (og, ho * wo), then
    col2im."""
    n_, o, ho, wo = gy.shape
    _, cg, kh, kw = w.shape
    og = o // groups
    k = cg * kh * kw
    wt = np.empty((groups, k, og), dtype=w.dtype)
    w3 = w.reshape((groups, og, k))
    for g in range(groups):
        wt[g] = w3[g].T
    g4 = gy.reshape((n_, groups, og, ho * wo))
    dx = np.zeros((n_, groups * cg, h, w_), dtype=gy.dtype)
    cols = np.empty((k, ho * wo), dtype=gy.dtype)
    for n in range(n_):
        for g in range(groups):
            np.dot(wt[g], g4[n, g], cols)
            _conv_col2im(cols, dx, n, g * cg, cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo)
    return dx
'''

_WEIGHT_GRAD = '''
def _conv2d_weight_grad(x, gy, sh, sw, pt, pl, dh, dw, groups, kh, kw):
    """conv2d's adjoint in w: the sum over samples of g (og, ho * wo) @ im2col.T."""
    n_, o, ho, wo = gy.shape
    cg = x.shape[1] // groups
    og = o // groups
    k = cg * kh * kw
    g4 = gy.reshape((n_, groups, og, ho * wo))
    dw3 = np.zeros((groups, og, k), dtype=gy.dtype)
    part = np.empty((og, k), dtype=gy.dtype)
    cols = np.empty((k, ho * wo), dtype=x.dtype)
    for n in range(n_):
        for g in range(groups):
            _conv_im2col(x, n, g * cg, cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, cols)
            np.dot(g4[n, g], cols.T, part)
            dw3[g] += part
    return dw3.reshape((o, cg, kh, kw))
'''

_POOL_INDEX = '''
def _max_pool2d_index(x, kh, kw, sh, sw, ph, pw, ho, wo):
    """The flat position ih * W + iw of each window's first maximum (row-major within
    the window; NaN counts as the maximum); padding never wins."""
    n_, c_, h, w = x.shape
    out = np.empty((n_, c_, ho, wo), dtype=np.int64)
    for n in range(n_):
        for c in range(c_):
            for oh in range(ho):
                for ow in range(wo):
                    best = -1
                    bv = x[n, c, 0, 0]
                    for i in range(kh):
                        ih = oh * sh - ph + i
                        if ih < 0 or ih >= h:
                            continue
                        for j in range(kw):
                            iw = ow * sw - pw + j
                            if iw < 0 or iw >= w:
                                continue
                            v = x[n, c, ih, iw]
                            if best < 0 or v > bv or (v != v and bv == bv):
                                best = ih * w + iw
                                bv = v
                    out[n, c, oh, ow] = best
    return out
'''

_POOL_GATHER = '''
def _pool_gather(x, idx):
    n_, c_, ho, wo = idx.shape
    w = x.shape[3]
    out = np.empty((n_, c_, ho, wo), dtype=x.dtype)
    for n in range(n_):
        for c in range(c_):
            for oh in range(ho):
                for ow in range(wo):
                    p = idx[n, c, oh, ow]
                    out[n, c, oh, ow] = x[n, c, p // w, p % w]
    return out
'''

_POOL_SCATTER = '''
def _pool_scatter(g, idx, h, w):
    n_, c_, ho, wo = idx.shape
    out = np.zeros((n_, c_, h, w), dtype=g.dtype)
    for n in range(n_):
        for c in range(c_):
            for oh in range(ho):
                for ow in range(wo):
                    p = idx[n, c, oh, ow]
                    out[n, c, p // w, p % w] += g[n, c, oh, ow]
    return out
'''

_CONV_HELPERS = (_COLUMNS_INSIDE, _IM2COL, _COL2IM, _FORWARD, _INPUT_GRAD, _WEIGHT_GRAD)


def _c(node, i, args):
    """Operand `i` contiguous and of the node's dtype (BLAS wants one dtype and
    contiguous rows)."""
    if node.args[i].dtype != node.dtype:
        return f"np.ascontiguousarray({args[i]}).astype(np.{node.dtype.name})"
    return f"np.ascontiguousarray({args[i]})"


def _geometry(node):
    p = node.kwargs
    (sh, sw), (pt, _, pl, _), (dh, dw) = p["stride"], p["padding"], p["dilation"]
    return f"{sh}, {sw}, {pt}, {pl}, {dh}, {dw}, {p['groups']}"


def _forward_lines(t, args, node, shape):
    ho, wo = node.shape[2:]
    return [f"{t} = _conv2d_forward({_c(node, 0, args)}, {_c(node, 1, args)}, "
            f"{_geometry(node)}, {ho}, {wo})"]


def _input_grad_lines(t, args, node, shape):
    h, w = node.shape[2:]
    return [f"{t} = _conv2d_input_grad({_c(node, 0, args)}, {_c(node, 1, args)}, "
            f"{_geometry(node)}, {h}, {w})"]


def _weight_grad_lines(t, args, node, shape):
    kh, kw = node.shape[2:]
    return [f"{t} = _conv2d_weight_grad({_c(node, 0, args)}, {_c(node, 1, args)}, "
            f"{_geometry(node)}, {kh}, {kw})"]


# ---------------------------------------------------------------------------------
# NumPy implementations (the interpreter's and the tape's)
# ---------------------------------------------------------------------------------

def _padded(x, padding, value=0.0):
    pt, pb, pl, pr = padding
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def _windows(xp, kernel, stride, dilation, out_hw):
    """(N, C, Ho, Wo, kh, kw) views of the padded input."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    v = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :ho, :wo]


def _result_dtype(*arrays):
    return np.result_type(*[np.asarray(a).dtype for a in arrays])


def _conv2d_impl(x, w, stride, padding, dilation, groups):
    dt = _result_dtype(x, w)
    x, w = np.asarray(x, dt), np.asarray(w, dt)
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    ho, wo = _out_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    win = _windows(_padded(x, padding), (kh, kw), stride, dilation, (ho, wo))
    win = win.reshape(n, groups, cg, ho, wo, kh, kw)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return np.ascontiguousarray(out.reshape(n, o, ho, wo), dtype=dt)


def _conv2d_input_grad_impl(g, w, stride, padding, dilation, groups, input_hw):
    dt = _result_dtype(g, w)
    g, w = np.asarray(g, dt), np.asarray(w, dt)
    n, o, ho, wo = g.shape
    _, cg, kh, kw = w.shape
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, padding
    h, wd = input_hw
    dxp = np.zeros((n, groups, cg, h + pt + pb, wd + pl + pr), dtype=dt)
    gg = g.reshape(n, groups, o // groups, ho, wo)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    for i in range(kh):
        for j in range(kw):
            part = np.einsum("ngohw,goc->ngchw", gg, wg[..., i, j], optimize=True)
            dxp[:, :, :, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                j * dw:j * dw + sw * (wo - 1) + 1:sw] += part
    return np.ascontiguousarray(dxp[:, :, :, pt:pt + h, pl:pl + wd].reshape(n, groups * cg, h, wd))


def _conv2d_weight_grad_impl(x, g, stride, padding, dilation, groups, kernel):
    dt = _result_dtype(x, g)
    x, g = np.asarray(x, dt), np.asarray(g, dt)
    n, c = x.shape[:2]
    _, o, ho, wo = g.shape
    cg = c // groups
    kh, kw = kernel
    win = _windows(_padded(x, padding), kernel, stride, dilation, (ho, wo))
    win = win.reshape(n, groups, cg, ho, wo, kh, kw)
    gg = g.reshape(n, groups, o // groups, ho, wo)
    out = np.einsum("ngohw,ngchwij->gocij", gg, win, optimize=True)
    return np.ascontiguousarray(out.reshape(o, cg, kh, kw), dtype=dt)


def _max_pool2d_index_impl(x, kernel, stride, padding):
    x = np.asarray(x)
    n, c, h, w = x.shape
    (kh, kw), (ph, pw) = kernel, padding
    ho, wo = _out_hw((h, w), kernel, stride, (ph, ph, pw, pw), (1, 1))
    pos = np.arange(h * w, dtype=np.int64).reshape(1, 1, h, w)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = _padded(x.astype(np.float64) if x.dtype.kind != "f" else x, (ph, ph, pw, pw), fill)
    pp = _padded(pos, (ph, ph, pw, pw), -1)
    win = _windows(xp, kernel, stride, (1, 1), (ho, wo)).reshape(n, c, ho, wo, kh * kw)
    pwin = _windows(pp, kernel, stride, (1, 1), (ho, wo)).reshape(1, 1, ho, wo, kh * kw)
    valid = pwin >= 0
    key = np.where(np.isnan(win), np.inf, win)       # NaN wins, as in PyTorch
    key = np.where(valid, key, -np.inf)
    best = key.max(axis=-1, keepdims=True)
    # the first position (row-major in the window) that is valid and attains the max;
    # when every valid value is -inf, the first valid position
    hit = valid & ((key == best) | ~np.isfinite(best) & (best < 0))
    first = np.argmax(hit, axis=-1)
    return np.take_along_axis(np.broadcast_to(pwin, win.shape), first[..., None], -1)[..., 0]


def _pool_gather_impl(x, idx):
    x = np.asarray(x)
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    idx = np.asarray(idx, np.int64)
    return np.take_along_axis(flat, idx.reshape(n, c, -1), -1).reshape(idx.shape)


def _pool_scatter_impl(g, idx, input_hw):
    g, idx = np.asarray(g), np.asarray(idx, np.int64)
    n, c = idx.shape[:2]
    h, w = input_hw
    out = np.zeros((n, c, h * w), dtype=g.dtype)
    rows = np.arange(n * c).repeat(idx[0, 0].size)
    np.add.at(out.reshape(n * c, h * w), (rows, idx.reshape(-1)), g.reshape(-1))
    return out.reshape(n, c, h, w)


# ---------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------

def _out_hw(hw, kernel, stride, padding, dilation):
    (h, w), (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw) = hw, kernel, stride, padding, dilation
    return ((h + pt + pb - (kh - 1) * dh - 1) // sh + 1,
            (w + pl + pr - (kw - 1) * dw - 1) // sw + 1)


def _conv_check(what, x, w, stride, padding, dilation, groups):
    """ShapeError (naming the shapes) unless x (N, C, H, W) and w (O, C // groups, kh,
    kw) fit; returns (Ho, Wo)."""
    xs, ws = format_shape(x), format_shape(w)
    if len(x) != 4 or len(w) != 4:
        raise ShapeError(f"{what}: x must be (N, C, H, W) and w (O, C // groups, kh, kw), got "
                         f"x {xs} and w {ws}")
    if any(d is None for d in x[1:]) or any(d is None for d in w):
        raise ShapeError(f"{what}: only the batch dimension may be dynamic, got x {xs} and w {ws}")
    c, o, cg = x[1], w[0], w[1]
    if c % groups or o % groups:
        raise ShapeError(f"{what}: groups={groups} must divide the input channels and the "
                         f"output channels, got x {xs} and w {ws}")
    if cg * groups != c:
        raise ShapeError(f"{what}: channel mismatch: x {xs} has {c} channels, but w {ws} "
                         f"expects {cg} per group x {groups} group(s) = {cg * groups}")
    (pt, pb, pl, pr), (dh, dw) = padding, dilation
    span = ((w[2] - 1) * dh + 1, (w[3] - 1) * dw + 1)
    padded = (x[2] + pt + pb, x[3] + pl + pr)
    if span[0] > padded[0] or span[1] > padded[1]:
        raise ShapeError(f"{what}: the kernel of w {ws} (dilated to {span[0]}x{span[1]}) is "
                         f"larger than the padded input {padded[0]}x{padded[1]} of x {xs}")
    return _out_hw(x[2:], w[2:], stride, padding, dilation)


def _conv2d_shape(shapes, meet, stride, padding, dilation, groups):
    x, w = shapes
    ho, wo = _conv_check("conv2d", x, w, stride, padding, dilation, groups)
    return (x[0], w[0], ho, wo)


def _input_grad_shape(shapes, meet, stride, padding, dilation, groups, input_hw):
    g, w = shapes
    return (g[0], w[1] * groups) + tuple(input_hw)


def _weight_grad_shape(shapes, meet, stride, padding, dilation, groups, kernel):
    x, g = shapes
    meet(x[0], g[0], lambda: f"conv2d_weight_grad: batch sizes differ: x {format_shape(x)} "
                             f"and g {format_shape(g)}")
    return (g[1], x[1] // groups) + tuple(kernel)


def _float_dtype(dtypes, **_):
    dt = np.result_type(*dtypes)
    return dt if dt.kind == "f" else np.dtype(np.float64)


# ---------------------------------------------------------------------------------
# Derivative rules: T(x, w, g) = <g, conv2d(x, w)> in each argument
# ---------------------------------------------------------------------------------

def _geo(p):
    return {k: p[k] for k in ("stride", "padding", "dilation", "groups")}


def _conv(F, x, w, p):
    return F.apply("conv2d", x, w, **_geo(p))


def _dx(F, g, w, p, hw):
    return F.apply("conv2d_input_grad", g, w, **_geo(p), input_hw=tuple(hw))


def _dw(F, x, g, p, kernel):
    return F.apply("conv2d_weight_grad", x, g, **_geo(p), kernel=tuple(kernel))


def _sum_terms(terms):
    terms = [t for t in terms if t is not None]
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _conv2d_vjp(F, g, out, x, w, **p):
    return _dx(F, g, w, p, x.shape[2:]), _dw(F, x, g, p, w.shape[2:])


def _conv2d_jvp(F, t, out, x, w, **p):
    tx, tw = t
    return _sum_terms([_conv(F, tx, w, p) if tx is not None else None,
                       _conv(F, x, tw, p) if tw is not None else None])


def _input_grad_vjp(F, c, out, g, w, **p):
    # <c, Dx(g, w)> = T(c, w, g)
    return _conv(F, c, w, p), _dw(F, c, g, p, w.shape[2:])


def _input_grad_jvp(F, t, out, g, w, **p):
    tg, tw = t
    hw = p["input_hw"]
    return _sum_terms([_dx(F, tg, w, p, hw) if tg is not None else None,
                       _dx(F, g, tw, p, hw) if tw is not None else None])


def _weight_grad_vjp(F, c, out, x, g, **p):
    # <c, Dw(x, g)> = T(x, c, g)
    return _dx(F, g, c, p, x.shape[2:]), _conv(F, x, c, p)


def _weight_grad_jvp(F, t, out, x, g, **p):
    tx, tg = t
    k = p["kernel"]
    return _sum_terms([_dw(F, tx, g, p, k) if tx is not None else None,
                       _dw(F, x, tg, p, k) if tg is not None else None])


_GEOMETRY = ("stride", "padding", "dilation", "groups")

register(Op(name="conv2d", kind="linalg", arity=2, impl=_conv2d_impl, shape=_conv2d_shape,
            dtype=_float_dtype, params=_GEOMETRY,
            lowering=Code(_forward_lines, helpers=_CONV_HELPERS),
            vjp=_conv2d_vjp, jvp=_conv2d_jvp,
            doc="2-D cross-correlation, PyTorch layouts: x (N, C, H, W), w (O, C // groups, "
                "kh, kw); padding (top, bottom, left, right)"))

register(Op(name="conv2d_input_grad", kind="linalg", arity=2, impl=_conv2d_input_grad_impl,
            shape=_input_grad_shape, dtype=_float_dtype, params=_GEOMETRY + ("input_hw",),
            public=False, lowering=Code(_input_grad_lines, helpers=_CONV_HELPERS),
            vjp=_input_grad_vjp, jvp=_input_grad_jvp,
            doc="conv2d's adjoint in x (a transposed convolution of g with w)"))

register(Op(name="conv2d_weight_grad", kind="linalg", arity=2, impl=_conv2d_weight_grad_impl,
            shape=_weight_grad_shape, dtype=_float_dtype, params=_GEOMETRY + ("kernel",),
            public=False, lowering=Code(_weight_grad_lines, helpers=_CONV_HELPERS),
            vjp=_weight_grad_vjp, jvp=_weight_grad_jvp,
            doc="conv2d's adjoint in w (the correlation of x with g)"))


def _pool_out(shape, kernel, stride, padding):
    return _out_hw(shape[2:], kernel, stride, (padding[0],) * 2 + (padding[1],) * 2, (1, 1))


register(Op(name="max_pool2d_index", kind="structure", arity=1, impl=_max_pool2d_index_impl,
            shape=lambda shapes, meet, kernel, stride, padding: tuple(shapes[0][:2]) + _pool_out(
                shapes[0], kernel, stride, padding),
            dtype=lambda dtypes, **_: np.dtype(np.int64), params=("kernel", "stride", "padding"),
            public=False,
            lowering=Code(lambda t, args, node, shape: [
                f"{t} = _max_pool2d_index(np.ascontiguousarray({args[0]}), "
                f"{', '.join(map(str, node.kwargs['kernel'] + node.kwargs['stride'] + node.kwargs['padding']))}, "
                f"{node.shape[2]}, {node.shape[3]})"], helpers=(_POOL_INDEX,)),
            doc="the flat (H, W) position of each max-pooling window's first maximum "
                "(no gradient)"))

register(Op(name="pool_gather", kind="structure", arity=2, impl=_pool_gather_impl,
            shape=lambda shapes, meet: tuple(shapes[1]), dtype=lambda dtypes, **_: dtypes[0],
            public=False,
            lowering=Code(lambda t, args, node, shape: [
                f"{t} = _pool_gather(np.ascontiguousarray({args[0]}), "
                f"np.ascontiguousarray({args[1]}))"], helpers=(_POOL_GATHER,)),
            vjp=lambda F, g, out, x, idx: (F.apply("pool_scatter", g, idx,
                                                   input_hw=tuple(x.shape[2:])), None),
            jvp=lambda F, t, out, x, idx: F.apply("pool_gather", t[0], idx),
            doc="x (N, C, H, W) taken at flat (H, W) positions idx (N, C, Ho, Wo)"))

register(Op(name="pool_scatter", kind="structure", arity=2, impl=_pool_scatter_impl,
            shape=lambda shapes, meet, input_hw: tuple(shapes[1][:2]) + tuple(input_hw),
            dtype=lambda dtypes, **_: dtypes[0], params=("input_hw",), public=False,
            lowering=Code(lambda t, args, node, shape: [
                f"{t} = _pool_scatter(np.ascontiguousarray({args[0]}), "
                f"np.ascontiguousarray({args[1]}), {node.shape[2]}, {node.shape[3]})"],
                helpers=(_POOL_SCATTER,)),
            vjp=lambda F, c, out, g, idx, input_hw: (F.apply("pool_gather", c, idx), None),
            jvp=lambda F, t, out, g, idx, input_hw: F.apply("pool_scatter", t[0], idx,
                                                            input_hw=input_hw),
            doc="pool_gather's adjoint: g added into zeros at the positions idx"))


# ---------------------------------------------------------------------------------
# The functions users call
# ---------------------------------------------------------------------------------

def _pair(what, name, v, minimum):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (int(v), int(v))
    try:
        a, b = v
    except (TypeError, ValueError):
        raise TypeError(f"{what}: {name} must be an int or a pair of ints, got {v!r}") from None
    if not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in (a, b)):
        raise TypeError(f"{what}: {name} must be an int or a pair of ints, got {v!r}")
    if a < minimum or b < minimum:
        raise ValueError(f"{what}: {name} must be >= {minimum}, got {v!r}")
    return int(a), int(b)


def _padding(what, padding, kernel, stride, dilation):
    """(top, bottom, left, right) from an int, a pair, "valid" or "same" (PyTorch's:
    total d * (k - 1), the extra one at the end; stride 1 only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{what}: padding='same' needs stride 1, got stride {stride}")
            out = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return tuple(out)
        raise ValueError(f"{what}: padding must be an int, a pair, 'same' or 'valid', got "
                         f"{padding!r}")
    ph, pw = _pair(what, "padding", padding, 0)
    return (ph, ph, pw, pw)


def _shape(x):
    return tuple(api.shape_of(x))


def _dtype(x):
    return np.dtype(getattr(x, "dtype", None) or np.asarray(x).dtype)


def conv2d(x, w, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation (what deep-learning libraries call convolution), PyTorch's
    layouts: x (N, C, H, W), w (O, C // groups, kh, kw) -> (N, O, Ho, Wo).  `padding`: an
    int, a pair (rows, columns), "valid" (none) or "same" (output size = input size,
    stride 1; an even kernel gets the extra row/column at the end, as PyTorch).  Only N
    may be dynamic.  No bias (add one: ``conv2d(x, w) + b[:, None, None]``)."""
    what = "conv2d"
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{what}: groups must be a positive int, got {groups!r}")
    stride = _pair(what, "stride", stride, 1)
    dilation = _pair(what, "dilation", dilation, 1)
    ws = _shape(w)
    if len(ws) != 4:
        raise ShapeError(f"{what}: w must be (O, C // groups, kh, kw), got {format_shape(ws)} "
                         f"(x {format_shape(_shape(x))})")
    pad = _padding(what, padding, ws[2:], stride, dilation)
    _conv_check(what, _shape(x), ws, stride, pad, dilation, int(groups))
    return api.apply("conv2d", x, w, stride=stride, padding=pad, dilation=dilation,
                     groups=int(groups))


def conv1d(x, w, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation: x (N, C, L), w (O, C // groups, k) -> (N, O, Lo); the
    options as ``conv2d``'s (ints, "same", "valid").  Computed as conv2d on (N, C, 1, L)."""
    xs, ws = _shape(x), _shape(w)
    if len(xs) != 3 or len(ws) != 3:
        raise ShapeError(f"conv1d: x must be (N, C, L) and w (O, C // groups, k), got x "
                         f"{format_shape(xs)} and w {format_shape(ws)}")
    for name, v in (("stride", stride), ("dilation", dilation), ("padding", padding)):
        if not isinstance(v, (numbers.Integral, str)) or isinstance(v, bool):
            raise TypeError(f"conv1d: {name} must be an int, got {v!r}")
    if isinstance(padding, str):
        if padding == "same" and stride != 1:
            raise ValueError(f"conv1d: padding='same' needs stride 1, got stride {stride}")
        pad = padding
    else:
        pad = (0, int(padding))
    try:
        y = conv2d(api.expand_dims(x, 2), api.expand_dims(w, 2), stride=(1, stride),
                   padding=pad, dilation=(1, dilation), groups=groups)
    except ShapeError as exc:
        raise ShapeError(f"conv1d: x {format_shape(xs)}, w {format_shape(ws)}: "
                         f"{str(exc).split(': ', 1)[1]}") from None
    return y[:, :, 0, :]


def _pool_args(what, x, kernel_size, stride, padding):
    kernel = _pair(what, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _pair(what, "stride", stride, 1)
    pad = _pair(what, "padding", padding, 0)
    xs = _shape(x)
    if len(xs) != 4 or any(d is None for d in xs[1:]):
        raise ShapeError(f"{what}: x must be (N, C, H, W) with only N dynamic, got "
                         f"{format_shape(xs)}")
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{what}: padding {pad} must be at most half the kernel {kernel}")
    if kernel[0] > xs[2] + 2 * pad[0] or kernel[1] > xs[3] + 2 * pad[1]:
        raise ShapeError(f"{what}: the kernel {kernel} is larger than the padded input "
                         f"{xs[2] + 2 * pad[0]}x{xs[3] + 2 * pad[1]} of x {format_shape(xs)}")
    return kernel, stride, pad


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """The maximum of each kh x kw window (stride defaults to the kernel size; padding
    counts as -inf, at most half the kernel).  The gradient goes to the first maximum of
    each window (row-major order in the window); NaN counts as the maximum."""
    kernel, stride, pad = _pool_args("max_pool2d", x, kernel_size, stride, padding)
    idx = api.apply("max_pool2d_index", x, kernel=kernel, stride=stride, padding=pad)
    return api.apply("pool_gather", x, idx)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """The mean of each kh x kw window (stride defaults to the kernel size).  With
    padding, the padded zeros count (PyTorch's default ``count_include_pad=True``): every
    window is divided by kh * kw.  A depthwise conv2d with constant weights."""
    kernel, stride, pad = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    c = _shape(x)[1]
    dt = _dtype(x)
    dt = dt if dt.kind == "f" else np.dtype(np.float64)
    weights = np.full((c, 1) + kernel, 1.0 / (kernel[0] * kernel[1]), dtype=dt)
    if isinstance(x, Expr):
        weights = graph.const(weights, dt)
    return conv2d(x, weights, stride=stride, padding=pad, groups=c)


__all__ = ["avg_pool2d", "conv1d", "conv2d", "max_pool2d"]

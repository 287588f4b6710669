"""Op-table cases of convolution and pooling (merged into tests/test_op_table.py), and
direct-loop NumPy references they (and tests/test_conv.py) are checked against."""

import numpy as np

import graphc as gc


def conv2d_reference(x, w, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """The definition, as loops over output positions: out[n, o, a, b] = sum over c, i,
    j of xpad[n, g * Cg + c, a * sh + i * dh, b * sw + j * dw] * w[o, c, i, j]."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n_, _, _, _ = x.shape
    o_, cg, kh, kw = w.shape
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1
    wo = (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    og = o_ // groups
    out = np.zeros((n_, o_, ho, wo))
    for o in range(o_):
        g = o // og
        for a in range(ho):
            for b in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg, a * sh:a * sh + (kh - 1) * dh + 1:dh,
                           b * sw:b * sw + (kw - 1) * dw + 1:dw]
                out[:, o, a, b] = np.sum(patch * w[o], axis=(1, 2, 3))
    return out


def pool_reference(x, kernel, stride, padding, kind):
    """Max (padding -inf) or mean (padding zeros, divided by kh * kw) of each window."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)),
                constant_values=fill)
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.empty(xp.shape[:2] + (ho, wo))
    for a in range(ho):
        for b in range(wo):
            win = xp[:, :, a * sh:a * sh + kh, b * sw:b * sw + kw]
            out[:, :, a, b] = win.max((2, 3)) if kind == "max" else win.sum((2, 3)) / (kh * kw)
    return out


rng = np.random.default_rng(2024)


def U(*shape):
    return rng.uniform(-1.5, 1.5, size=shape)


def distinct(*shape):
    """Values at least 0.05 apart (max-pooling's argmax does not move under the
    checker's finite-difference steps)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 - 0.025 * n).reshape(shape)


_G = dict(stride=(2, 1), padding=(1, 0, 1, 2), dilation=(1, 2), groups=2)   # (top, bottom, left, right)

CASES = {
    "conv2d (padding 1)": (
        lambda x, w: gc.conv2d(x, w, padding=1), [U(2, 2, 5, 5), U(3, 2, 3, 3)],
        lambda x, w: conv2d_reference(x, w, padding=(1, 1, 1, 1))),
    "conv2d (stride, pair padding, dilation, groups)": (
        lambda x, w: gc.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
        [U(2, 4, 5, 5), U(4, 2, 2, 2)],
        lambda x, w: conv2d_reference(x, w, (2, 1), (1, 1, 2, 2), (1, 2), 2)),
    "conv1d (same, even kernel)": (
        lambda x, w: gc.conv1d(x, w, padding="same"), [U(2, 2, 6), U(3, 2, 4)],
        lambda x, w: conv2d_reference(x[:, :, None], w[:, :, None], padding=(0, 0, 1, 2))[:, :, 0]),
    # the adjoints as ops of their own, so that they too are differentiated twice
    "conv2d_input_grad (transposed convolution)": (
        lambda g, w: gc.api.apply("conv2d_input_grad", g, w, **_G, input_hw=(6, 5)),
        [U(2, 4, 3, 6), U(4, 2, 2, 2)],              # input row 5 is in no window
        lambda g, w: _adjoint_x(g, w, (2, 4, 6, 5))),
    "conv2d_weight_grad": (
        lambda x, g: gc.api.apply("conv2d_weight_grad", x, g, **_G, kernel=(2, 2)),
        [U(2, 4, 6, 5), U(2, 4, 3, 6)],
        lambda x, g: _adjoint_w(x, g, (4, 2, 2, 2))),
    "max_pool2d (padding, stride), avg_pool2d": (
        lambda x: gc.max_pool2d(x, 3, stride=2, padding=1) * 2.0
        + gc.avg_pool2d(x, 2, padding=1),
        [distinct(2, 2, 5, 5)],
        lambda x: 2.0 * pool_reference(x, (3, 3), (2, 2), (1, 1), "max")
        + pool_reference(x, (2, 2), (2, 2), (1, 1), "mean")),
    "pool_scatter (max_pool2d's adjoint)": (
        lambda g, x: gc.api.apply("pool_scatter", g, gc.api.apply(
            "max_pool2d_index", x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)),
            input_hw=(4, 5)),
        [U(1, 2, 2, 2), distinct(1, 2, 4, 5)],
        lambda g, x: _scatter_reference(g, x)),
}


def _adjoint_x(g, w, x_shape):
    """<g, conv(x, w)> differentiated in x by brute force: the columns of conv's matrix."""
    out = np.zeros(x_shape)
    for idx in np.ndindex(x_shape):
        e = np.zeros(x_shape)
        e[idx] = 1.0
        out[idx] = np.sum(g * conv2d_reference(e, w, _G["stride"], _G["padding"], _G["dilation"], 2))
    return out


def _adjoint_w(x, g, w_shape):
    out = np.zeros(w_shape)
    for idx in np.ndindex(w_shape):
        e = np.zeros(w_shape)
        e[idx] = 1.0
        out[idx] = np.sum(g * conv2d_reference(x, e, _G["stride"], _G["padding"], _G["dilation"], 2))
    return out


def _scatter_reference(g, x):
    out = np.zeros(x.shape)
    for n, c, a, b in np.ndindex(g.shape):
        win = x[n, c, 2 * a:2 * a + 2, 2 * b:2 * b + 2]
        i, j = np.unravel_index(np.argmax(win), win.shape)
        out[n, c, 2 * a + i, 2 * b + j] += g[n, c, a, b]
    return out

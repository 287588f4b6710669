"""Python operators (+ - * / ** @, unary -, comparisons, ``.T``) for graph nodes and
tape tensors alike: both route them to the functions of ``graphc.api``.

``==`` is deliberately not overloaded, so expressions and tensors stay usable as
dictionary keys; use ``gc.equal`` for an elementwise comparison."""


class _Functions:
    """The functions operators call, installed by ``graphc.api`` when it is imported
    (so this module imports nothing of graphc: graph nodes and tape tensors both use it,
    and api uses graph)."""

    add = sub = mul = div = pow = matmul = neg = abs = mod = floor_divide = None
    less = less_equal = greater = greater_equal = transpose = None
    bitwise_and = bitwise_or = bitwise_xor = invert = None
    sum = mean = max = min = reshape = astype = squeeze = getitem = at = None
    prod = None


F = _Functions()


def install(namespace):
    """Called by ``graphc.api``: the functions Python's operators dispatch to."""
    for name in vars(_Functions):
        if not name.startswith("_"):
            setattr(F, name, namespace[name])


class OperatorMixin:
    __slots__ = ()
    __array_ufunc__ = None      # `ndarray + node` defers to node.__radd__
    __hash__ = object.__hash__

    def __add__(self, other): return F.add(self, other)
    def __radd__(self, other): return F.add(other, self)
    def __sub__(self, other): return F.sub(self, other)
    def __rsub__(self, other): return F.sub(other, self)
    def __mul__(self, other): return F.mul(self, other)
    def __rmul__(self, other): return F.mul(other, self)
    def __truediv__(self, other): return F.div(self, other)
    def __rtruediv__(self, other): return F.div(other, self)
    def __pow__(self, other): return F.pow(self, other)
    def __rpow__(self, other): return F.pow(other, self)
    def __matmul__(self, other): return F.matmul(self, other)
    def __rmatmul__(self, other): return F.matmul(other, self)
    def __neg__(self): return F.neg(self)
    def __pos__(self): return self
    def __lt__(self, other): return F.less(self, other)
    def __le__(self, other): return F.less_equal(self, other)
    def __gt__(self, other): return F.greater(self, other)
    def __ge__(self, other): return F.greater_equal(self, other)
    def __mod__(self, other): return F.mod(self, other)
    def __rmod__(self, other): return F.mod(other, self)
    def __floordiv__(self, other): return F.floor_divide(self, other)
    def __rfloordiv__(self, other): return F.floor_divide(other, self)
    def __and__(self, other): return F.bitwise_and(self, other)
    def __rand__(self, other): return F.bitwise_and(other, self)
    def __or__(self, other): return F.bitwise_or(self, other)
    def __ror__(self, other): return F.bitwise_or(other, self)
    def __xor__(self, other): return F.bitwise_xor(self, other)
    def __rxor__(self, other): return F.bitwise_xor(other, self)
    def __invert__(self): return F.invert(self)
    def __abs__(self): return F.abs(self)

    @property
    def T(self):
        return F.transpose(self)

    @property
    def ndim(self):
        return len(self.shape)

    # NumPy's array methods, for graph nodes and tape tensors alike
    def sum(self, axis=None, keepdims=False): return F.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return F.mean(self, axis, keepdims)
    def prod(self, axis=None, keepdims=False): return F.prod(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return F.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return F.min(self, axis, keepdims)
    def astype(self, dtype): return F.astype(self, dtype)
    def squeeze(self, axis=None): return F.squeeze(self, axis)

    def reshape(self, *shape):
        """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``, as NumPy's."""
        return F.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list))
                         else shape)

    def transpose(self, *axes):
        """``x.transpose()``, ``x.transpose(1, 0, 2)`` or ``x.transpose((1, 0, 2))``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return F.transpose(self, axes or None)

    def __getitem__(self, index): return F.getitem(self, index)

    @property
    def at(self):
        """``x.at[index].set(v)`` / ``.add(v)``: functional updates (JAX's spelling)."""
        return F.at(self)

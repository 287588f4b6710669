"""Python operators (+ - * / ** @, unary -, comparisons, ``.T``) for graph nodes and
tape tensors alike: both route them to the functions of ``graphc.api``.

``==`` is deliberately not overloaded, so expressions and tensors stay usable as
dictionary keys; use ``gc.equal`` for an elementwise comparison."""


class _Functions:
    """The functions operators call, installed by ``graphc.api`` when it is imported
    (so this module imports nothing of graphc: graph nodes and tape tensors both use it,
    and api uses graph)."""

    add = sub = mul = div = pow = matmul = neg = None
    less = less_equal = greater = greater_equal = transpose = None


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

    @property
    def T(self):
        return F.transpose(self)

    @property
    def ndim(self):
        return len(self.shape)

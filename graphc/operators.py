"""Python operators (+ - * / ** @, unary -, comparisons, ``.T``) for graph nodes and
tape tensors alike: both route them to the functions of ``graphc.api``.

``==`` is deliberately not overloaded, so expressions and tensors stay usable as
dictionary keys; use ``gc.equal`` for an elementwise comparison."""


_api_module = None


def _api():
    global _api_module
    if _api_module is None:
        from . import api  # deferred: api imports graph, which uses this mixin
        _api_module = api
    return _api_module


class OperatorMixin:
    __slots__ = ()
    __array_ufunc__ = None      # `ndarray + node` defers to node.__radd__
    __hash__ = object.__hash__

    def __add__(self, other): return _api().add(self, other)
    def __radd__(self, other): return _api().add(other, self)
    def __sub__(self, other): return _api().sub(self, other)
    def __rsub__(self, other): return _api().sub(other, self)
    def __mul__(self, other): return _api().mul(self, other)
    def __rmul__(self, other): return _api().mul(other, self)
    def __truediv__(self, other): return _api().div(self, other)
    def __rtruediv__(self, other): return _api().div(other, self)
    def __pow__(self, other): return _api().pow(self, other)
    def __rpow__(self, other): return _api().pow(other, self)
    def __matmul__(self, other): return _api().matmul(self, other)
    def __rmatmul__(self, other): return _api().matmul(other, self)
    def __neg__(self): return _api().neg(self)
    def __pos__(self): return self
    def __lt__(self, other): return _api().less(self, other)
    def __le__(self, other): return _api().less_equal(self, other)
    def __gt__(self, other): return _api().greater(self, other)
    def __ge__(self, other): return _api().greater_equal(self, other)

    @property
    def T(self):
        return _api().transpose(self)

    @property
    def ndim(self):
        return len(self.shape)

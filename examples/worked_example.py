"""The worked example of backpropagation: f = (x + y) * z at x = -2, y = 5, z = -4.

Forward: q = x + y = 3, f = q * z = -12.  Backward: df/dz = q = 3, df/dq = z = -4,
and since q = x + y, df/dx = df/dy = df/dq = -4."""

import graphc as gc

x, y, z = gc.scalar("x"), gc.scalar("y"), gc.scalar("z")
q = x + y
f = q * z
dfdx, dfdy, dfdz = gc.grad(f, [x, y, z])

print("reference interpreter:", gc.evaluate([f, dfdx, dfdy, dfdz], {x: -2.0, y: 5.0, z: -4.0}))
fn = gc.compile([x, y, z], [f, dfdx, dfdy, dfdz])
print("compiled kernel:      ", fn(-2.0, 5.0, -4.0))
print()
print("the generated kernel:")
print("def _kernel" + fn.source.split("def _kernel", 1)[1].split("def check_args", 1)[0])

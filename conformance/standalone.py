"""Standalone reproducers: a found divergence as a script that imports NumPy and one framework only.

A user filing a bug upstream needs a script the framework's maintainers can run without this suite.
The script is *generated from the adapter itself*, not from a template per op: :func:`adapter_source`
copies, verbatim, the methods of the impl's adapter class and of its bases (``inspect``), the simple
class attributes they read, and every module-level function or class of ``impls/`` they reach (the
TensorFlow adapter's compute functions, ``SparseRows``...), so the script calls the framework exactly
as the adapter does, for a native op and for a composed one alike.  The only stand-ins are the
registry's answer to "which inputs are differentiable" (``OPS[op].differentiable_in``, rendered as
data for the case's op) and the case object (its inputs read from the stored ``.npz`` by NumPy, op,
dtype and params written into the script).

The script asserts the divergence against the stored golden float64 outputs with the suite's rule
written out as numbers (``|actual - golden| <= RTOL * (|golden| + SCALE)``; a non-finite golden
value matched exactly), so it exits 0 while the divergence holds and fails once it is fixed.

An adapter that reaches code this cannot render (another ``impls`` module used as a module, such as
the oracle's) raises :class:`NotStandalone`; the search then writes the adapter-based reproducer of
``conformance/reproduce.py`` instead (the test-only adapters, the NumPy impls).
"""
from __future__ import annotations

import ast
import builtins
import inspect
import math
import textwrap
import types

from conformance.compare import output_scales, tolerance
from impls import get_adapter
from impls.ops import OPS

# The adapter's entry points: what the script calls (``load``, ``run``) and what ``run`` reaches.
_PLAIN = (str, bytes, bool, int, float, type(None))


class NotStandalone(Exception):
    """The adapter reaches code that a standalone script cannot carry."""


def _source(obj) -> str:
    return textwrap.dedent(inspect.getsource(obj))


def _names(source: str) -> set:
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


def _plain(value) -> bool:
    return isinstance(value, _PLAIN) or (isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value))


class _Renderer:
    """Collects the module-level definitions the copied methods reach, in dependency order."""

    def __init__(self):
        self.imports, self.definitions, self.seen = [], [], set()
        self.frameworks = set()

    def reach(self, source: str, module) -> None:
        for name in sorted(_names(source)):
            if name in self.seen or hasattr(builtins, name) or name not in vars(module):
                continue
            self.seen.add(name)
            value = vars(module)[name]
            if name == "OPS":
                continue  # the registry: a stand-in rendered as data (see render)
            if isinstance(value, types.ModuleType):
                if value.__name__.split(".")[0] in ("impls", "conformance"):
                    raise NotStandalone("%s uses the suite's module %s" % (module.__name__, value.__name__))
                alias = "" if value.__name__ == name else " as %s" % name
                self.imports.append("import %s%s" % (value.__name__, alias))
            elif inspect.isclass(value) or inspect.isfunction(value):
                defining = inspect.getmodule(value)
                if defining is None or not defining.__name__.startswith("impls"):
                    raise NotStandalone("%s uses %s from %s" % (module.__name__, name, defining))
                code = _source(value)
                self.reach(code, defining)
                self.definitions.append(code)
            elif _plain(value):
                self.definitions.append("%s = %r\n" % (name, value))
            else:
                raise NotStandalone("%s uses the module-level %s %r" % (module.__name__, type(value).__name__, name))


def adapter_source(impl: str):
    """``(source, class name)``: the impl's adapter class, its bases and what they reach, verbatim."""
    adapter = type(get_adapter(impl))
    renderer = _Renderer()
    classes = []
    chain = [c for c in reversed(adapter.__mro__) if c is not object]
    for position, cls in enumerate(chain):
        module = inspect.getmodule(cls)
        body = []
        for name, value in vars(cls).items():
            function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else \
                value.fget if isinstance(value, property) else value
            if inspect.isfunction(function):
                body.append(_source(function))
            elif name == "ops":  # OpSupport declarations: the script needs only which ops there are
                body.insert(0, "ops = %r  # the ops the adapter declares\n" % (tuple(value),))
            elif not name.startswith("__") and _plain(value):
                body.insert(0, "%s = %r\n" % (name, value))
        text = "\n".join(body) or "pass\n"
        renderer.reach(text, module)
        base = "(%s)" % chain[position - 1].__name__ if position else ""
        classes.append("class %s%s:\n%s" % (cls.__name__, base, textwrap.indent(text, "    ")))
        renderer.frameworks |= {node.names[0].name.split(".")[0] for node in ast.walk(ast.parse(text))
                                if isinstance(node, ast.Import)}
    source = "\n".join(renderer.imports) + "\n\n\n" + "\n\n".join(renderer.definitions + classes)
    return source, adapter.__name__, sorted(renderer.frameworks - {"numpy", "os"})


def _number(value) -> str:
    value = float(value)
    return "float(%r)" % str(value) if not math.isfinite(value) else repr(value)


MODULE = '''"""The suite's {impl} adapter ({module}), copied verbatim by `conformance search` for the
standalone reproducers beside it (regenerated with each one): it needs NumPy and {frameworks} only.
"""
from __future__ import annotations

{adapter}


# -- stand-ins for the suite's registry and case object -------------------------------------------
class OpInfo:
    """What the adapter asks the registry: which inputs of the op are differentiable."""

    def __init__(self, differentiable):
        self.differentiable = tuple(differentiable)

    def differentiable_in(self, params):
        return self.differentiable


OPS = {{}}  # op -> OpInfo, filled by the reproducer for its op


def _shards(inputs, prefix):
    if prefix in inputs:
        return inputs[prefix]
    return [inputs["%s/%d" % (prefix, i)] for i in range(sum(1 for k in inputs if k.startswith(prefix + "/")))]


class Case:
    """A stored case: its inputs as NumPy arrays (bfloat16 ones stored as float32), op, dtype, params."""

    def __init__(self, op, dtype, params, inputs):
        self.op, self.dtype, self.params, self.inputs = op, dtype, params, inputs

    upstream = property(lambda self: self.inputs["upstream"])
    weight_shards = property(lambda self: [self.inputs["weights"]] if "weights" in self.inputs
                             else _shards(self.inputs, "weights"))
    bias_shards = property(lambda self: _shards(self.inputs, "biases"))


def assert_diverges(adapter, case, stored, status, output, rtol, scale):
    """Run the case and assert the divergence ``conformance search`` found: ``fail`` (``output`` differs
    from the stored golden one: a non-finite golden value not matched exactly, or a finite one off by
    more than ``rtol * (|golden| + scale)``, the suite's tolerance rule), ``error`` (the call raises
    where the oracle answers), ``crash`` or ``timeout`` (the call kills or hangs the process)."""
    import numpy

    if status == "error":
        try:
            adapter.run(case)
        except Exception as error:  # the divergence: the oracle answers this valid input
            print("raises: %s: %s" % (type(error).__name__, error))
            return
        raise AssertionError("no longer raises")
    outputs = adapter.run(case)  # a crash or a timeout: this call kills or hangs the process
    if status != "fail":
        raise AssertionError("returned: no longer %s" % ("crashes" if status == "crash" else "hangs"))
    assert output in outputs, "no longer diverges: the output is missing"
    golden = stored["golden/" + output]
    actual = numpy.asarray(outputs[output], dtype=numpy.float64)
    if actual.shape != golden.shape:
        print("%s: shape %s, expected %s" % (output, actual.shape, golden.shape))
        return
    finite = numpy.isfinite(golden)
    nonfinite = (~finite & ~((numpy.isnan(actual) & numpy.isnan(golden)) | (actual == golden))) | (
        finite & ~numpy.isfinite(actual))
    allowed = rtol * (numpy.abs(numpy.where(finite, golden, 0.0)) + scale)
    excess = numpy.where(finite & numpy.isfinite(actual), numpy.abs(actual - golden) / allowed, 0.0)
    wrong = numpy.argwhere(nonfinite | (excess > 1.0))
    if wrong.size:
        at = tuple(int(i) for i in wrong[0])
        print("%s at %s: %r, golden %r (%d elements differ)" % (output, at, float(actual[at]), float(golden[at]),
                                                              len(wrong)))
    assert nonfinite.any() or excess.max(initial=0.0) > 1.0, "no longer diverges: within the tolerance"
'''

SCRIPT = '''"""{title}

{what}

Found by `conformance search`: {signature}
{found}
Runs the case with the suite's {impl} adapter, copied verbatim into {helper}.py beside this file
(NumPy and {frameworks} only), on the inputs stored in
{case_path}
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import {helper} as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, {case_relative!r}))
    adapter_module.OPS[{op!r}] = adapter_module.OpInfo({differentiable!r})
    inputs = {{name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}}
    case = adapter_module.Case({op!r}, {dtype!r}, {params}, inputs)
    adapter = adapter_module.{cls}()
    print({impl!r}, adapter.load("cpu"))
    # The suite's tolerance rule for this case: {reason}
    adapter_module.assert_diverges(adapter, case, stored, {status!r}, {output!r}, rtol={rtol}, scale={scale})


if __name__ == "__main__":
    main()
'''



def helper_name(impl: str) -> str:
    """The module beside the reproducers that holds the impl's copied adapter."""
    return "_%s_adapter" % impl.replace("-", "_")


def render(impl: str, case, case_relative: str, signature: str, found: str = "") -> tuple:
    """``(script, helper module name, helper module source)`` of a found divergence (raises
    :class:`NotStandalone`)."""
    adapter, cls, frameworks = adapter_source(impl)
    status, output = signature.split("|")[2:4]
    support = get_adapter(impl).ops.get(case.op)
    composed = support is not None and support.mode == "composed"
    what = ("%s is NOT a %s op: the suite's adapter composes it from %s primitives (%s). A divergence here "
            "is a limit of that composition unless the primitives themselves are shown wrong."
            % (case.op, impl, impl, support.note) if composed else
            "%s is %s's own op, called as the adapter calls it: %s." % (case.op, impl, support.note if support else "?"))
    tol = tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    helper = helper_name(impl)
    module = inspect.getmodule(type(get_adapter(impl))).__name__.replace(".", "/") + ".py"
    script = SCRIPT.format(
        title=("%s: %s, %s %s" % (impl, case.op, status, output)).rstrip(), what=textwrap.fill(what, 100),
        signature=signature, found=(found or case.id).replace("\\", "/").replace('"' * 3, "'" * 3), impl=impl,
        helper=helper, frameworks=", ".join(frameworks), case_path=case_relative, cls=cls,
        differentiable=tuple(OPS[case.op].differentiable_in(case.params)), op=case.op, dtype=case.dtype,
        params=repr(case.params), case_relative=case_relative, reason=tol.reason, status=status, output=output,
        rtol=repr(tol.rtol), scale=_number(output_scales(case).get(output, 1.0)))
    source = MODULE.format(impl=impl, module=module, frameworks=", ".join(frameworks), adapter=adapter)
    return script, helper, source.replace("\n\n\n\n", "\n\n\n")

"""Standalone reproducers: one divergence as one script that needs NumPy and one framework only.

A user filing a bug upstream needs a script the framework's maintainers can run without this suite.
``conformance repro CASE --impl IMPL --standalone`` writes it, generated from the suite's own source
each time (never a hand copy, never a module beside it that could go stale): :func:`render` copies,
verbatim (``inspect``), the methods of the impl's adapter class and of its bases, the simple class
attributes they read, and every module-level function, class or plain constant of ``impls/`` they
reach (the TensorFlow adapter's compute functions, ``SparseRows``...), so the script calls the
framework exactly as the adapter does, for a native op and for a composed one alike.  The tolerance
rule is embedded the same way, from :func:`conformance.compare.allowed_error` and
:func:`~conformance.compare.judge_elements` (the functions the comparison itself calls), and so are
``impls.ops.weight_shards``/``bias_shards``, which the case stand-in's properties are.

The only stand-ins are data: the registry's answer to "which inputs are differentiable"
(``OPS[op].differentiable_in``) for the case's op, and the case (op, dtype, params, and its inputs
written into the script as literals when small, so the script moves on its own; a larger case is
read from its ``.npz``, given as the script's argument).  The script asserts the divergence against
the golden float64 output (the oracle's, of the convention the impl follows), so it exits 0 while
the divergence holds and fails once it is fixed.

An adapter that reaches code this cannot render (another ``impls`` module used as a module, such as
the oracle's) raises :class:`NotStandalone`; its reproducer is the adapter-based one
(``conformance/reproduce.py``).
"""
from __future__ import annotations

import ast
import builtins
import inspect
import math
import os
import sys
import textwrap
import types

import numpy as np

from conformance import compare
from impls import get_adapter
from impls import ops as ops_module
from impls.ops import OPS
from impls.support import convention_of

EMBED_LIMIT = 4096  # values of inputs and golden written into the script; a larger case is read from its .npz
_PLAIN = (str, bytes, bool, int, float, type(None))
# What the rendered code may carry besides impls/: the tolerance rule's module.
_CARRIED = ("impls", "conformance.compare")
# The template's own top-level names: an adapter reaching a definition of one of them cannot be rendered.
_TEMPLATE_NAMES = ("OpInfo", "OPS", "Case", "INPUTS", "GOLDEN", "CASE_FILE", "inf", "nan", "_array", "load_case",
                   "check", "main")
_TEMPLATE_IMPORTS = ("os", "sys", "numpy")  # imported by the template itself


class NotStandalone(Exception):
    """The adapter reaches code that a standalone script cannot carry."""


def _source(obj) -> str:
    return textwrap.dedent(inspect.getsource(obj))


def _names(source: str) -> set:
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


def _plain(value) -> bool:
    """A value whose ``repr`` is a literal that reads back the same, in the same order every time
    (no sets: their order changes between processes)."""
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return isinstance(value, _PLAIN) and not (isinstance(value, float) and not math.isfinite(value))


class _Renderer:
    """Collects the module-level definitions the copied code reaches, in dependency order."""

    def __init__(self):
        self.imports, self.definitions, self.seen = [], [], set()

    def reach(self, source: str, module) -> None:
        for name in sorted(_names(source)):
            self.take(name, module)

    def take(self, name, module) -> None:
        if name in self.seen or hasattr(builtins, name) or name not in vars(module):
            return
        self.seen.add(name)
        value = vars(module)[name]
        if name == "OPS":
            return  # the registry: a stand-in rendered as data (see render)
        if isinstance(value, types.ModuleType) and name in _TEMPLATE_IMPORTS and value.__name__ == name:
            return
        if name in _TEMPLATE_NAMES + _TEMPLATE_IMPORTS:
            raise NotStandalone("%s's %s clashes with the script's own %s" % (module.__name__, name, name))
        if isinstance(value, types.ModuleType):
            if value.__name__.split(".")[0] in ("impls", "conformance"):
                raise NotStandalone("%s uses the suite's module %s" % (module.__name__, value.__name__))
            alias = "" if value.__name__ == name else " as %s" % name
            self.imports.append("import %s%s" % (value.__name__, alias))
        elif inspect.isclass(value) or inspect.isfunction(value):
            defining = inspect.getmodule(value)
            if defining is None or not defining.__name__.startswith(_CARRIED):
                raise NotStandalone("%s uses %s from %s" % (module.__name__, name, defining))
            code = _source(value)
            self.reach(code, defining)
            self.definitions.append(code)
        elif _plain(value):
            self.definitions.append("%s = %r\n" % (name, value))
        else:
            raise NotStandalone("%s uses the module-level %s %r" % (module.__name__, type(value).__name__, name))


def _adapter_classes(impl: str, renderer: _Renderer):
    """``(class definitions, class name, module path)``: the adapter class and its bases, verbatim."""
    adapter = type(get_adapter(impl))
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
    module = inspect.getmodule(adapter).__name__.replace(".", "/") + ".py"
    return classes, adapter.__name__, module


def frameworks_of(source: str) -> list:
    """The top-level modules the rendered code imports, NumPy and the standard library left out."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return sorted(names - _stdlib() - {"numpy", "__future__"})


def _stdlib() -> set:
    names = getattr(sys, "stdlib_module_names", None)  # Python >= 3.10
    if names:
        return set(names)
    import pkgutil  # noqa: PLC0415 - Python 3.8 and 3.9 only
    import sysconfig  # noqa: PLC0415

    return set(sys.builtin_module_names) | {m.name for m in pkgutil.iter_modules([sysconfig.get_paths()["stdlib"]])}


def _fill(text) -> str:
    return textwrap.fill(text, 100, break_on_hyphens=False, break_long_words=False)


def _number(value) -> str:
    value = float(value)
    return "float(%r)" % str(value) if not math.isfinite(value) else repr(value)


def _literal(array) -> str:
    """``_array(dtype, shape, [values])``: exact (a float's repr reads back the same float, inf and
    nan are names the script defines)."""
    array = np.asarray(array)
    values = ", ".join(repr(v) for v in array.reshape(-1).tolist())
    head = "_array(%r, %r, [" % (array.dtype.name, tuple(array.shape))
    if len(head + values) <= 80:  # one line, in the INPUTS dict's indentation
        return head + values + "])"
    return head + "\n" + textwrap.fill(values, 100, initial_indent=" " * 8, subsequent_indent=" " * 8,
                                       break_on_hyphens=False, break_long_words=False) + "])"


SCRIPT = '''"""{header}
"""
from __future__ import annotations

import os
import sys

import numpy
{imports}


# -- the suite's adapter and what it reaches (impls/), its tolerance rule (conformance/compare.py) ----
{definitions}


# -- stand-ins for the suite's registry and case object (impls/ops.py, impls/caseio.py) ------------
class OpInfo:
    """The registry's answer for this case: which inputs of the op are differentiable."""

    def __init__(self, differentiable):
        self.differentiable = tuple(differentiable)

    def differentiable_in(self, params):
        return self.differentiable


OPS = {{{op!r}: OpInfo({differentiable!r})}}


class Case:
    """The stored case as the adapter reads it: inputs in their storage dtype (bfloat16 as float32)."""

    def __init__(self, op, dtype, params, inputs):
        self.op, self.dtype, self.params, self.inputs = op, dtype, params, inputs

    upstream = property(lambda self: self.inputs["upstream"])
    weight_shards = property(lambda self: weight_shards(self.inputs))  # the functions above (impls/ops.py)
    bias_shards = property(lambda self: bias_shards(self.inputs))


# -- the case ----------------------------------------------------------------------------------------
{case_data}


def check(adapter, case, golden):
    """The divergence found: {expectation}."""
{check}


def main():
    inputs, golden = load_case()
    case = Case({op!r}, {dtype!r}, {params}, inputs)
    adapter = {cls}()
    print({impl!r}, adapter.load("cpu"))
    check(adapter, case, golden)


if __name__ == "__main__":
    main()
'''

EMBEDDED = '''inf, nan = float("inf"), float("nan")


def _array(dtype, shape, values):
    return numpy.array(values, dtype=dtype).reshape(shape)


INPUTS = {{
{inputs}
}}
GOLDEN = {golden}  # {golden_what}


def load_case():
    return INPUTS, GOLDEN'''

FROM_FILE = '''CASE_FILE = {case_file!r}  # {case_file_what}


def load_case():
    """The inputs and golden output stored in the case file: the first argument, else CASE_FILE."""
    path = sys.argv[1] if len(sys.argv) > 1 else {default}
    stored = numpy.load(path)
    inputs = {{name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}}
    return inputs, {golden}'''

CHECKS = {
    "fail": '''    outputs = adapter.run(case)
    assert {output!r} in outputs, "no longer diverges: no {output} among the outputs"
    actual = numpy.asarray(outputs[{output!r}], dtype=numpy.float64)
    if actual.shape != golden.shape:
        print("{output}: shape %s, expected %s" % (actual.shape, golden.shape))
        return
    # The suite's tolerance for this case: {reason}
    with numpy.errstate(all="ignore"):
        error, ratio, nonfinite = judge_elements(actual, golden, rtol={rtol}, scale={scale})
    wrong = numpy.argwhere(nonfinite | (ratio > 1.0))
    assert wrong.size, "no longer diverges: {output} is within the tolerance (at most %.3g of it)" % ratio.max(
        initial=0.0)
    at = tuple(int(i) for i in wrong[0])
    print("{output} at %s: %r, golden %r (%d elements differ)" % (at, float(actual[at]), float(golden[at]),
                                                               len(wrong)))''',
    "error": '''    try:
        adapter.run(case)
    except Exception as error:  # the divergence: the oracle answers this valid input
        print("raises: %s: %s" % (type(error).__name__, error))
        return
    raise AssertionError("no longer raises")''',
    "crash": '''    adapter.run(case)  # the divergence: this call kills the process
    raise AssertionError("returned: no longer crashes")''',
    "timeout": '''    adapter.run(case)  # the divergence: this call hangs
    raise AssertionError("returned: no longer hangs")''',
}


def _golden(impl, case, status, output):
    """``(golden array, its key in the case file, convention)`` of the asserted output (a ``fail``)."""
    if status != "fail":
        return None, None, ""
    convention = convention_of(get_adapter(impl), case.op)
    key = ("convention/%s/%s" % (convention, output) if output in case.convention_golden.get(convention, {})
           else "golden/" + output)
    return case.golden_for(convention)[output], key, convention


def _case_data(case, golden, golden_key, convention, case_file, relative_to):
    """``(sentence for the docstring, the script's case section)``: the case written in when small,
    else read from its file."""
    size = sum(v.size for v in case.inputs.values()) + (golden.size if golden is not None else 0)
    if size <= EMBED_LIMIT:
        sentence = "and so is the case (its inputs%s)." % (
            " and the golden float64 %s, the oracle's" % golden_key.rpartition("/")[2] if golden is not None else "")
        return sentence, EMBEDDED.format(
            inputs="\n".join("    %r: %s," % (name, _literal(case.inputs[name])) for name in sorted(case.inputs)),
            golden=_literal(golden) if golden is not None else "None",
            golden_what=("%s of the %s convention" % (golden_key, convention)) if convention else
            (golden_key or "no golden output: the divergence is in how the call ends"))
    shown = (os.path.relpath(case_file, relative_to) if relative_to else case_file).replace(os.sep, "/")
    sentence = "the case (%d values) is read from its .npz: the script's argument, else %s%s." % (
        size, shown, " (relative to the script)" if relative_to else "")
    return sentence, FROM_FILE.format(
        case_file=shown, case_file_what="relative to this script" if relative_to else
        "where the case was when this was generated",
        default="os.path.join(os.path.dirname(os.path.abspath(__file__)), CASE_FILE)" if relative_to
        else "CASE_FILE", golden="stored[%r]" % golden_key if golden_key else "None")


def _what(impl, op) -> str:
    support = get_adapter(impl).ops.get(op)
    if support is not None and support.mode == "composed":
        return ("%s is NOT a %s op: the suite's adapter composes it from %s primitives (%s). A divergence here "
                "is a limit of that composition unless the primitives themselves are shown wrong."
                % (op, impl, impl, support.note))
    return "%s is %s's own op, called as the adapter calls it: %s." % (op, impl, support.note if support else "?")


EXPECTATIONS = {"fail": "{output} differs from the golden one beyond the tolerance",
                "error": "the call raises where the oracle answers", "crash": "the call kills the process",
                "timeout": "the call hangs"}


def render(impl: str, case, *, status: str, output: str = "", case_file: str, command: str, signature: str = "",
           relative_to: str = None) -> str:
    """The script of one divergence of ``impl`` on ``case`` (read from ``case_file``), generated by
    ``command`` (raises :class:`NotStandalone`).  ``relative_to``: the folder the script is written
    to, so that a case read from its file is found relative to the script wherever the two move."""
    renderer = _Renderer()
    classes, cls, module = _adapter_classes(impl, renderer)
    for name in ("allowed_error", "judge_elements"):  # the rule, as the comparison calls it
        renderer.take(name, compare)
    for name in ("weight_shards", "bias_shards"):  # what the case stand-in's properties are
        renderer.take(name, ops_module)
    renderer.take("np", compare)  # the rule's NumPy name, whether or not the adapter uses it
    definitions = "\n\n".join(renderer.definitions + classes)
    imports = "\n".join(sorted(set(renderer.imports)))
    frameworks = frameworks_of(imports + "\n" + definitions)
    golden, golden_key, convention = _golden(impl, case, status, output)
    data, case_data = _case_data(case, golden, golden_key, convention, case_file, relative_to)
    if status == "fail":
        tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
        check = CHECKS["fail"].format(output=output, reason=tol.reason, rtol=repr(tol.rtol),
                                      scale=_number(compare.output_scales(case).get(output, 1.0)))
    else:
        check = CHECKS[status]
    header = "\n".join([
        ("%s: %s, %s %s" % (impl, case.op, status, output)).rstrip(), "", _fill(_what(impl, case.op)), "",
        *(["Found by `conformance search`: %s" % signature] if signature else []),
        _fill("Case %s: %s" % (case.id, case.meta.get("description", ""))),
        _fill("Needs NumPy%s only: the suite's %s adapter (%s) and its tolerance rule (conformance/compare.py) are "
              "embedded below, verbatim, %s Exit status 0 means the divergence still shows; an AssertionError, "
              "that it is gone." % (" and " + ", ".join(frameworks) if frameworks else "", impl, module, data)), "",
        "Generated from the suite's source by", "`%s`;" % command, "regenerate it rather than edit it."])
    script = SCRIPT.format(
        header=header.replace("\\", "/").replace('"' * 3, "'" * 3), imports=imports, definitions=definitions,
        op=case.op, differentiable=tuple(OPS[case.op].differentiable_in(case.params)), case_data=case_data,
        expectation=EXPECTATIONS[status].format(output=output), check=check, dtype=case.dtype,
        params=repr(case.params), cls=cls, impl=impl)
    return script.replace("\n\n\n\n", "\n\n\n")

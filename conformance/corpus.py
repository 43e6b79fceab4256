"""The stored case corpus: a deterministic generator, its manifest of SHA-256 hashes, and verification.

Every case is declared once, in its op's module (``impls/ops/<op>.py``: ``cases()`` and
``invalid_cases(dtype)``, reached through the registry), with the inputs drawn from a seed derived
from the case id.  Float inputs are rounded to the case dtype before they are stored, and golden
outputs are computed in float64 by the reference *from the stored values*, so the golden answer is
the exact answer for exactly the inputs every framework receives.  Sampled
classes and their probabilities (expected counts) are stored too: every framework sees the same
samples.

Layout: ``cases/<op>/<case id>.npz`` (see ``impls/caseio.py``) and ``cases/MANIFEST.json`` listing
each file with its SHA-256 and its metadata.  The corpus describes cases only: which impl can run a
case is decided at run time (``impls/support.py``), so adding or changing an adapter never changes
a corpus file.  The per-op facts a case needs (the oracle, the logit scale) come from ``impls/ops/``.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from impls import dtypes, numpy_dispatch
from impls import reference as ref
from impls.caseio import Case, flatten_gradients
from impls.ops import OPS
from impls.ops.casebuild import ALL_DTYPES, Spec  # noqa: F401 - the corpus's names for them since the start

MANIFEST = "MANIFEST.json"

FORMAT_VERSION = 1
DEFAULT_CASES_DIR = Path(__file__).resolve().parent.parent / "cases"


# --------------------------------------------------------------------------------------------
# The families: each op's valid cases in registry order, then the bad-input family of every op
# --------------------------------------------------------------------------------------------
# Each bad input is tried in float32 and float64: an op that fails in one dtype for an unrelated reason
# (a known deviation) is still tested in the other.
INVALID_DTYPES = ("float64", "float32")


def invalid_cases():
    """Every op's bad-input cases (each a valid one with one thing broken: the reference must raise a
    ValueError/TypeError naming the argument; frameworks' behaviour is recorded).  The family comes
    last in the manifest, so a framework that corrupts its own memory on bad input can only affect
    other bad-input cases of the same worker."""
    for dtype in INVALID_DTYPES:
        for op in OPS.values():
            yield from op.invalid_cases(dtype)


FAMILIES = tuple(op.cases for op in OPS.values()) + (invalid_cases,)


def all_specs():
    specs = [spec for family in FAMILIES for spec in family()]
    ids = [spec.id for spec in specs]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise RuntimeError("corpus generator declares duplicate case ids: %s" % duplicated)
    return specs


# --------------------------------------------------------------------------------------------
# From a spec to a stored case
# --------------------------------------------------------------------------------------------
def build_case(spec: Spec) -> Case:
    stored = {k: (dtypes.round_to(v, spec.dtype) if v.dtype.kind == "f" else v.astype(np.int64))
              for k, v in spec.inputs.items()}
    meta = {"id": spec.id, "op": spec.op, "dtype": spec.dtype, "params": spec.params,
            "description": spec.description, "tags": sorted(set(spec.tags)), "features": sorted(set(spec.features))}
    case = Case(meta, stored, {})
    as64 = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in stored.items()}
    case64 = Case(meta, as64, {})
    op = OPS[spec.op]
    if spec.invalid:
        meta.update(invalid=spec.invalid, outputs=[])
        if spec.valid_in:  # read by impls.support.why_unsupported, as for undefined goldens
            meta["undefined_conventions"] = {convention: "%s, %s convention: %s" % (spec.op, convention, why)
                                             for convention, why in spec.valid_in.items()}
        try:
            op.reference_grad()(upstream=case64.upstream, **case64.reference_kwargs())
        except (ValueError, TypeError) as error:
            if spec.invalid["argument"] not in str(error):
                raise RuntimeError("%s: the reference's error does not name %r: %s"
                                   % (spec.id, spec.invalid["argument"], error)) from None
            return case
        raise RuntimeError("%s: the reference accepted invalid input (%s)" % (spec.id, spec.invalid["reason"]))
    if op.conventions:
        _convention_goldens(case, op, case64)
    else:
        result = op.reference_grad()(upstream=case64.upstream, **case64.reference_kwargs())
        case.golden = {k: np.asarray(v, dtype=np.float64) for k, v in flatten_gradients(result).items()}
    meta["outputs"] = sorted(case.golden)
    meta["logit_scale"] = op.logit_scale(spec.params, as64)
    return case


def _convention_goldens(case, op, case64):
    """The goldens of an op with documented conventions: ``case.golden`` is the
    first convention's that documents the case (``ref.CONVENTIONS``: torch's, but where only another
    convention has the option, such as Keras's sample weights); each other
    convention stores only the outputs whose float64 values differ from those, bit for bit
    (``Case.convention_golden``), and ``meta["conventions"]`` lists, per convention that documents
    the case, those output names; ``meta["undefined_conventions"]`` says why the others do not."""
    per_convention, undefined = {}, {}
    for convention in ref.CONVENTIONS:
        try:
            result = op.reference_grad()(upstream=case64.upstream, convention=convention,
                                         **case64.reference_kwargs())
        except ref.ConventionUndefined as error:
            undefined[convention] = str(error)
            continue
        per_convention[convention] = {k: np.asarray(v, dtype=np.float64) for k, v in flatten_gradients(result).items()}
    if not per_convention:
        raise RuntimeError("%s: no convention documents this case (%s)" % (case.id, "; ".join(undefined.values())))
    base_name = next(iter(per_convention))  # ref.CONVENTIONS order
    case.golden = base = per_convention.pop(base_name)
    case.meta["conventions"] = {base_name: []}
    for convention, golden in per_convention.items():
        differ = sorted(k for k in golden if not np.array_equal(golden[k], base[k], equal_nan=True))
        case.meta["conventions"][convention] = differ
        case.convention_golden[convention] = {k: golden[k] for k in differ}
    if undefined:
        case.meta["undefined_conventions"] = undefined


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def generate_pinned(out_dir: Path = DEFAULT_CASES_DIR, extra_env=None) -> None:
    """Generate the corpus in a fresh interpreter whose NumPy dispatch is pinned: golden bits that do
    not depend on the CPU (impls/numpy_dispatch.py)."""
    env = dict(os.environ, **numpy_dispatch.pinned_env(), **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(DEFAULT_CASES_DIR.parent), env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, "-c", "import sys; from conformance import corpus; corpus.generate(sys.argv[1])",
                    str(out_dir)], env=env, check=True, timeout=600)


def generate(out_dir: Path = DEFAULT_CASES_DIR, progress=None) -> dict:
    """Write every case and the manifest under ``out_dir``; return the manifest.

    Bytes that every machine reproduces need a pinned NumPy (:func:`generate_pinned` or
    ``conformance corpus``); unpinned, the golden bits may depend on the CPU."""
    out_dir = Path(out_dir)
    specs = all_specs()
    entries = []
    for spec in (progress(specs) if progress else specs):
        case = build_case(spec)
        relative = Path(spec.op) / (spec.id + ".npz")
        (out_dir / spec.op).mkdir(parents=True, exist_ok=True)
        case.write(out_dir / relative)
        entries.append({"id": spec.id, "op": spec.op, "dtype": spec.dtype, "file": relative.as_posix(),
                        "sha256": sha256_of(out_dir / relative), "description": spec.description,
                        "tags": case.meta["tags"], "features": case.meta["features"]})
        if spec.invalid:
            entries[-1]["invalid"] = spec.invalid
    manifest = {"format": FORMAT_VERSION, "generator": "conformance corpus", "cases": entries,
                "corpus_sha256": hashlib.sha256("".join(e["sha256"] for e in entries).encode()).hexdigest()}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


class CorpusError(Exception):
    """The corpus on disk does not match its manifest."""


def load_manifest(cases_dir: Path = DEFAULT_CASES_DIR) -> dict:
    path = Path(cases_dir) / MANIFEST
    if not path.is_file():
        raise CorpusError("%s: no manifest (run `conformance corpus --out %s`)" % (path, cases_dir))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CorpusError("%s: not valid JSON (%s)" % (path, error)) from None
    if manifest.get("format") != FORMAT_VERSION:
        raise CorpusError("%s: format %r, expected %d" % (path, manifest.get("format"), FORMAT_VERSION))
    return manifest


def verify(cases_dir: Path = DEFAULT_CASES_DIR) -> list:
    """Return one line per problem (missing, changed or unlisted file); empty when the corpus is intact."""
    cases_dir = Path(cases_dir)
    try:
        manifest = load_manifest(cases_dir)
    except CorpusError as error:
        return [str(error)]
    problems = []
    listed = set()
    # A sub-folder with a manifest of its own (cases/found/, written by ``conformance search``) is a
    # corpus of its own: verified the same way, its files listed there.
    for sub_manifest in sorted(cases_dir.glob("*/" + MANIFEST)):
        problems += verify(sub_manifest.parent)
        listed.update(p.resolve() for p in sub_manifest.parent.rglob("*.npz"))
    for entry in manifest["cases"]:
        path = cases_dir / entry["file"]
        listed.add(path.resolve())
        if not path.is_file():
            problems.append("%s: missing" % path)
        elif sha256_of(path) != entry["sha256"]:
            problems.append("%s: content differs from the manifest (sha256 %s, expected %s)"
                            % (path, sha256_of(path)[:12], entry["sha256"][:12]))
    for path in sorted(cases_dir.rglob("*.npz")):
        if path.resolve() not in listed:
            problems.append("%s: not in the manifest" % path)
    return problems

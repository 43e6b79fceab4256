"""Reproducers of one impl's divergence on one stored case, generated on demand (``conformance repro``).

Two kinds, both written by :func:`generate` from the case and the project's current source, so
neither can drift from the suite:

* the adapter-based reproducer (the default): a few lines that run the impl through the suite's own
  adapter on the stored case (``conformance/reproduce.py``) and assert the divergence with the
  suite's comparison.  ``conformance search`` writes one per find into ``repro/found/``;
* the standalone one (``--standalone``): one script that needs NumPy and the impl's framework only,
  to file upstream, with the adapter, the tolerance rule and the case embedded by generation from the
  suite's source (:mod:`conformance.standalone`).

Every generated file names the command that generated it (``Generated ... by `conformance repro
...```); :func:`regenerate` runs that command again, and a test compares each committed reproducer
with it byte for byte, so a committed one that no longer matches the generator fails the tests.

What a reproducer asserts comes from the found corpus: the impl's signature of the case in
``cases/found/MANIFEST.json`` (``impl|op|status|output|...``), or ``--expect`` for a case without one.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import textwrap
from pathlib import Path

from conformance import corpus, standalone
from impls import get_adapter
from impls.caseio import Case

REPO_ROOT = Path(__file__).resolve().parent.parent
FOUND_DIR = corpus.DEFAULT_CASES_DIR / "found"
STATUSES = ("fail", "error", "crash", "timeout")
# The line of a generated file that names its command (both kinds write it).
COMMAND = re.compile(r"by\s+`(conformance repro [^`]+)`")


class ReproError(Exception):
    """A case, impl or expectation the generator cannot use: one line for the command line."""


def reproducer_name(impl, case_id) -> str:
    """``repro/found/<impl>_<case id>.py`` (one case may show divergences of several impls)."""
    return ("%s_%s.py" % (impl, case_id)).replace("-", "_")


def parse_expect(text):
    """``fail:OUTPUT``, ``error``, ``crash`` or ``timeout`` -> ``(status, output)``."""
    status, _, output = str(text).partition(":")
    if status not in STATUSES or (status == "fail") != bool(output):
        raise ReproError("--expect: expected fail:OUTPUT, error, crash or timeout, got %r" % text)
    return status, output


def _shown(path: Path) -> str:
    """A path as the generated text states it: relative to the repository when inside it (the same
    on every checkout), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def find_case(ref: str, found_dir: Path, cases_dir: Path):
    """``(case file, manifest entry or None)`` of a case id (the found corpus first, then the stored
    corpus) or of a path to a case file."""
    if ref.endswith(".npz"):
        path = Path(ref)
        if not path.is_file():
            raise ReproError("unknown case %s: no such file" % ref)
        return path.resolve(), None
    for folder in (found_dir, cases_dir):
        try:
            entries = corpus.load_manifest(folder)["cases"]
        except corpus.CorpusError:
            continue
        for entry in entries:
            if entry["id"] == ref:
                return (Path(folder) / entry["file"]).resolve(), entry
    raise ReproError("unknown case %s: not in %s nor in %s" % (ref, _shown(Path(found_dir) / corpus.MANIFEST),
                                                               _shown(Path(cases_dir) / corpus.MANIFEST)))


def expectation(entry, impl: str, expect=None):
    """``(status, output, signature)``: what the reproducer asserts."""
    signatures = [key for key in (entry or {}).get("signatures", ()) if key.split("|")[0] == impl]
    if expect is not None:
        status, output = parse_expect(expect)
        matching = [key for key in signatures if key.split("|")[2:4] == [status, output]]
        return status, output, matching[0] if matching else ""
    if len(signatures) != 1:
        raise ReproError("%s: %s; say what to assert with --expect fail:OUTPUT, error, crash or timeout"
                         % ((entry or {}).get("id", "the case"),
                            "no divergence of %s is recorded in the found corpus" % impl if not signatures
                            else "%d divergences of %s are recorded" % (len(signatures), impl)))
    status, output = signatures[0].split("|")[2:4]
    return status, output, signatures[0]


def command_line(ref, impl, *, standalone_script=False, out=None, expect=None, found_dir=FOUND_DIR,
                 cases_dir=corpus.DEFAULT_CASES_DIR) -> str:
    """The ``conformance repro`` command that generates this reproducer (defaults left out)."""
    words = ["conformance", "repro", ref if not ref.endswith(".npz") else _shown(Path(ref)), "--impl", impl]
    if expect:
        words += ["--expect", expect]
    if Path(found_dir).resolve() != FOUND_DIR.resolve():
        words += ["--found-dir", _shown(found_dir)]
    if Path(cases_dir).resolve() != corpus.DEFAULT_CASES_DIR.resolve():
        words += ["--cases", _shown(cases_dir)]
    if standalone_script:
        words.append("--standalone")
    if out is not None:
        words += ["--out", _shown(out)]
    return " ".join(shlex.quote(word) for word in words)


THIN = '''"""{header}
"""
{os_import}import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = {root}
sys.path.insert(0, str(ROOT))
{environment}
from conformance.reproduce import reproduce  # noqa: E402  (no framework until the adapter loads)

reproduce({case_expr}, {impl!r}, {status!r}, {output!r})
'''

EXPECTATIONS = {"fail": "{output} is its worst output, beyond the tolerance", "error": "the call raises",
                "crash": "the call kills the process", "timeout": "the call hangs"}


def _thin(impl, case, case_file, status, output, signature, command, standalone_command, out):
    try:  # inside the repository: paths relative to the reproducer, so the file can be committed
        depth = len(Path(out).resolve().parent.relative_to(REPO_ROOT).parts)
        root = "HERE" + ".parent" * depth
    except (ValueError, TypeError):
        root = "Path(%r)" % str(REPO_ROOT)
    shown = _shown(case_file)
    case_expr = "ROOT / %r" % shown if not Path(shown).is_absolute() else repr(shown)
    test_only = impl.startswith("test-")
    header = "\n".join([
        ("%s: %s, %s %s" % (impl, case.op, status, output)).rstrip(), "",
        *(["Found by `conformance search`: %s" % signature] if signature else []),
        _fill("Case %s: %s" % (case.id, case.meta.get("description", ""))),
        _fill("Runs %s through the suite's own adapter (conformance/reproduce.py; the adapter imports the one "
              "framework) on the stored case %s and asserts that %s: exit status 0 means it still shows. A script "
              "that needs NumPy and the framework only, to file upstream:"
              % (impl, shown, EXPECTATIONS[status].format(output=output))),
        "`%s`" % standalone_command, "",
        "Generated by", "`%s`;" % command, "regenerate it rather than edit it (tests/test_repro.py compares the two)."])
    return THIN.format(
        header=header.replace("\\", "/").replace('"' * 3, "'" * 3), root=root, case_expr=case_expr, impl=impl,
        status=status, output=output, os_import="import os\n" if test_only else "",
        environment='os.environ["CONFORMANCE_TEST_ADAPTERS"] = "1"  # a test-only adapter\n' if test_only else "")


def _fill(text) -> str:
    return textwrap.fill(text, 100, break_on_hyphens=False, break_long_words=False)


def generate(ref: str, impl: str, *, standalone_script=False, out=None, expect=None, found_dir=FOUND_DIR,
             cases_dir=corpus.DEFAULT_CASES_DIR) -> str:
    """The text of the reproducer of ``impl`` on the case ``ref`` (an id or a case file); ``out``:
    where it will be written (paths inside it are relative to it where that makes it movable)."""
    case_file, entry = find_case(ref, found_dir, cases_dir)
    case = Case.read(case_file)
    if entry is None and ref.endswith(".npz"):  # a case file of the found corpus still has its signatures
        try:
            entry = next((e for e in corpus.load_manifest(case_file.parent.parent)["cases"] if e["id"] == case.id),
                         None)
        except corpus.CorpusError:
            entry = None
    status, output, signature = expectation(entry, impl, expect)
    if status == "fail" and output not in case.golden:
        raise ReproError("%s has no output %s (it has %s)" % (case.id, output, ", ".join(sorted(case.golden))))
    try:
        get_adapter(impl)
    except ValueError as error:
        raise ReproError(str(error)) from None
    options = dict(expect=expect, found_dir=found_dir, cases_dir=cases_dir)
    command = command_line(ref, impl, standalone_script=standalone_script, out=out, **options)
    if not standalone_script:
        standalone_command = command_line(ref, impl, standalone_script=True, **options) + " --out FILE"
        return _thin(impl, case, case_file, status, output, signature, command, standalone_command, out)
    try:
        return standalone.render(impl, case, status=status, output=output, case_file=str(case_file),
                                 command=command, signature=signature,
                                 relative_to=str(Path(out).resolve().parent) if out is not None else None)
    except standalone.NotStandalone as error:
        raise ReproError("%s: no standalone reproducer (%s); the adapter-based one (without --standalone) runs it"
                         % (impl, error)) from None


def write(path: Path, ref: str, impl: str, **options) -> Path:
    path = Path(path)
    text = generate(ref, impl, out=path, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_found(repro_dir: Path, impl: str, case_id: str, found_dir: Path, signature: str) -> Path:
    """What ``conformance search`` writes for a new find: the adapter-based reproducer, with
    ``--expect`` only where the found corpus records more than this one divergence of the impl."""
    entry = next(e for e in corpus.load_manifest(found_dir)["cases"] if e["id"] == case_id)
    ours = [key for key in entry.get("signatures", ()) if key.split("|")[0] == impl]
    status, output = signature.split("|")[2:4]
    expect = None if ours == [signature] else (status + (":" + output if output else ""))
    return write(Path(repro_dir) / reproducer_name(impl, case_id), case_id, impl, expect=expect,
                 found_dir=found_dir)


def add_arguments(parser) -> None:
    parser.add_argument("case", metavar="CASE", help="a case id (of cases/found/, then of cases/) or a case .npz file")
    parser.add_argument("--impl", required=True, help="the impl that diverges on it")
    parser.add_argument("--standalone", action="store_true",
                        help="one script that needs NumPy and the impl's framework only (the adapter, the tolerance "
                             "rule and the case embedded, generated from the suite's source), to file upstream")
    parser.add_argument("--expect", default=None, metavar="fail:OUTPUT|error|crash|timeout",
                        help="what to assert (default: the impl's divergence recorded in the found corpus)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="write it here (default: stdout)")
    parser.add_argument("--found-dir", type=Path, default=FOUND_DIR, help="the found corpus (default: cases/found)")
    parser.add_argument("--cases", type=Path, default=corpus.DEFAULT_CASES_DIR,
                        help="the stored corpus (default: cases/)")


def generated_command(path: Path) -> str:
    """The ``conformance repro`` command a generated file names ("" when it names none)."""
    match = COMMAND.search(Path(path).read_text(encoding="utf-8"))
    return match.group(1) if match else ""


def regenerate(path: Path) -> str:
    """The text the command named in a generated file writes today (its paths taken from the
    repository root, as it states them)."""
    command = generated_command(path)
    if not command:
        raise ReproError("%s names no `conformance repro` command" % path)
    parser = argparse.ArgumentParser(prog="conformance repro")
    add_arguments(parser)
    args = parser.parse_args(shlex.split(command)[2:])

    def rooted(value):
        return value if value is None or os.path.isabs(value) else REPO_ROOT / value

    case = str(rooted(args.case)) if args.case.endswith(".npz") else args.case
    return generate(case, args.impl, standalone_script=args.standalone, out=rooted(args.out), expect=args.expect,
                    found_dir=rooted(args.found_dir), cases_dir=rooted(args.cases))


def committed(root: Path = REPO_ROOT / "repro") -> list:
    """The generated reproducers under ``repro/``: every file that names its generating command."""
    return sorted(path for path in Path(root).rglob("*.py") if generated_command(path))

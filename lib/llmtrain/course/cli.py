"""``python -m llmtrain``: run chapters headless, rebuild or verify the course checkpoints.

    python -m llmtrain list
    python -m llmtrain run [--quick] [--chapters N ...] [-p NAME=VALUE ...] [--device D] [--out DIR]
    python -m llmtrain student-edition OUT/          the chapters without their solutions
    python -m llmtrain coursework tag|check [N ...]  nbgrader metadata: add it, or check it
    python -m llmtrain screenshots [DIR]             the README's pictures (JupyterLab, Chromium)
    python -m llmtrain execute CHAPTER ...   (maintainers: re-execute in place, for committing)
    python -m llmtrain zoo build [NAME ...] [--tokenizer]
    python -m llmtrain zoo verify [--deep]
    python -m llmtrain doctor      what is wrong with this setup, each problem with its fix
    python -m llmtrain site OUT/ [--base-url /PATH]   the course as a static website
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from .paths import CHAPTERS_DIR, ROOT, FolderNotWritable
from .runner import chapters, execute_in_place, find_chapter


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_params(pairs: list[str]) -> dict:
    """``["seed=1", "ranks=[1, 4]"]`` -> ``{"seed": 1, "ranks": [1, 4]}``.

    Values are Python literals where they parse as one, text otherwise (``device=cpu``).
    """
    params = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip().isidentifier():
            raise SystemExit(f"-p {pair!r}: write a parameter as NAME=VALUE, e.g. -p seed=1")
        params[name.strip()] = _value(value.strip())
    return params


def _run(args) -> int:
    from . import runner

    params = parse_params(args.param)
    if args.quick:
        params["quick"] = True
    if args.device is not None:
        params["device"] = args.device
    keys = list(args.chapters) + list(args.chapter_list or [])
    todo = list(dict.fromkeys(find_chapter(c) for c in keys)) or chapters()
    try:
        if args.student:
            from .coursework import write_student_edition

            student_dir = Path(args.out) / "student-edition"
            todo = write_student_edition(todo, student_dir)
            print(f"student edition of {len(todo)} chapter(s) in {student_dir}")
        runs = runner.run_course(todo, params, Path(args.out), timeout=args.timeout)
    except runner.ParameterError as e:
        print(f"error: {e}\nNothing was run.", file=sys.stderr)
        return 2
    except FolderNotWritable as e:
        return _cannot_write(e, "Pass a folder you can write to with --out, e.g. "
                                "`--out /tmp/runs`. Nothing was run.")
    print()
    print(runner.summary_table(runs))
    print(f"executed notebooks and summary.json / summary.md in {args.out}")
    return 0 if all(r.ok for r in runs) else 1


def _cannot_write(e: FolderNotWritable, instead: str) -> int:
    """Say which folder cannot be written and what to pass instead; returns exit status 2."""
    folder = e.folder if e.folder.is_absolute() else f"{e.folder} ({e.folder.absolute()})"
    print(f"error: cannot write to {folder}: {e.reason}.\n{instead}", file=sys.stderr)
    return 2


def _coursework(args) -> int:
    import nbformat

    from . import coursework

    todo = [find_chapter(c) for c in args.chapters] or chapters()
    bad = 0
    for nb_path in todo:
        nb = nbformat.read(nb_path, as_version=4)
        if args.coursework_command == "tag":
            changed = coursework.tag_exercises(nb)
            if changed:
                nbformat.write(nb, nb_path)
            print(f"{nb_path.stem}: {len(coursework.find_exercises(nb))} exercises, "
                  f"{changed} cell(s) tagged")
        else:
            problems = coursework.nbgrader_problems(nb)
            bad += bool(problems)
            print(f"{nb_path.stem}: {'OK' if not problems else 'PROBLEMS'}")
            for p in problems:
                print("  -", p)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmtrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters")
    run = sub.add_parser("run", help="execute chapters headless with papermill, print a summary")
    run.add_argument("chapters", nargs="*", help="numbers or names (default: all)")
    run.add_argument("--chapters", dest="chapter_list", nargs="+", metavar="N",
                     help="numbers or names, as an option (same as the positional form)")
    run.add_argument("--quick", action="store_true", help="set quick=True (smoke run)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="set a parameter, e.g. -p seed=1 -p ranks=[1,4]")
    run.add_argument("--device", help='set device: "auto", "cpu", "cuda" or "mps"')
    run.add_argument("--out", default="runs", help="folder for executed notebooks (default runs/)")
    run.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    run.add_argument("--student", action="store_true",
                     help="run the student edition (solutions removed) instead")
    student = sub.add_parser("student-edition", help="write the chapters without their solutions")
    student.add_argument("out", help="folder to write the student notebooks to")
    student.add_argument("--chapters", nargs="+", default=[], metavar="N")
    cw = sub.add_parser("coursework", help="nbgrader metadata of the exercises")
    cw_sub = cw.add_subparsers(dest="coursework_command", required=True)
    for name, text in (("tag", "add nbgrader metadata to every exercise's cells"),
                       ("check", "check exercises and nbgrader metadata")):
        p = cw_sub.add_parser(name, help=text)
        p.add_argument("chapters", nargs="*", help="numbers or names (default: all)")
    shots = sub.add_parser("screenshots", help="the README's playground pictures, from JupyterLab")
    shots.add_argument("out", nargs="?", default=str(ROOT / "assets" / "figures"))
    execute = sub.add_parser("execute", help="re-execute chapters in place (for committing)")
    execute.add_argument("chapters", nargs="+", help="numbers or names")
    zoo = sub.add_parser("zoo", help="the course checkpoints")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    build = zoo_sub.add_parser("build", help="retrain checkpoints from their recipes")
    build.add_argument("names", nargs="*")
    build.add_argument("--tokenizer", action="store_true", help="retrain the tokenizer first")
    build.add_argument("--device", default="auto")
    verify = zoo_sub.add_parser("verify", help="check checkpoints against code and manifests")
    verify.add_argument("--deep", action="store_true", help="also re-measure the metrics")
    sub.add_parser("doctor", help="check this setup (Python, torch, Jupyter, assets, memory) "
                                  "before a chapter fails; 1 if a chapter cannot run")
    site = sub.add_parser("site", help="the executed course as a static website (Jupyter Book "
                                       "2; needs Node.js 18+ from your system's packages)")
    site.add_argument("out", help="the folder to write (new, empty, or an earlier site)")
    site.add_argument("--base-url", default="",
                      help="the path it will be served under, e.g. /course for GitHub Pages")
    site.add_argument("--chapters", nargs="*", default=[], help="only these chapters")
    args = parser.parse_args(argv)

    if args.command == "list":
        for nb in chapters():
            print(nb.stem)
        return 0
    if args.command == "run":
        return _run(args)
    if args.command == "doctor":
        from . import doctor

        return doctor.main()
    if args.command == "site":
        from .site import SiteError, build_site

        try:
            report = build_site(Path(args.out), [find_chapter(c) for c in args.chapters] or None,
                                base_url=args.base_url)
        except SiteError as e:
            raise SystemExit(f"cannot build the website: {e}") from None
        print(report.summary())
        return 0
    if args.command == "student-edition":
        from .coursework import write_student_edition

        todo = [find_chapter(c) for c in args.chapters] or chapters()
        try:
            written = write_student_edition(todo, Path(args.out))
        except FolderNotWritable as e:
            return _cannot_write(e, "Pass a folder you can write to, e.g. `python -m llmtrain "
                                    "student-edition /tmp/student-edition`. Nothing was written.")
        for path in written:
            print(f"{path}")
        print(f"{len(todo)} student notebook(s): solutions removed, checks say "
              "'not solved yet' until answered")
        return 0
    if args.command == "coursework":
        return _coursework(args)
    if args.command == "screenshots":
        from . import browser

        why = browser.missing_requirements()
        if why:
            raise SystemExit(f"cannot take screenshots: {why}")
        for path in browser.take_screenshots(Path(args.out), CHAPTERS_DIR):
            print(f"{path} ({path.stat().st_size / 1e3:.0f} KB)")
        return 0
    if args.command == "execute":
        for nb in [find_chapter(c) for c in args.chapters]:
            print(f"{nb.stem}: executed in place in {execute_in_place(nb):.0f} s")
        return 0
    from . import recipes, shared_data, zoo

    if args.zoo_command == "build":
        if args.tokenizer:
            shared_data.build_tokenizer()
            shared_data.course_tokenizer.cache_clear()
        for name in args.names or list(recipes.RECIPES):
            m = zoo.build(name, device=args.device)
            print(f"{name}: {m['metrics']} ({m['built_with']['seconds']} s)")
        return 0
    return _verify(zoo, list(recipes.RECIPES), deep=args.deep)


def _verify(zoo, names: list[str], deep: bool = False) -> int:
    """``zoo verify``: the tokenizer, then every checkpoint, each problem with its fix, and a
    summary; 1 if anything is wrong. A damaged file never stops the checks of the others."""
    bad, uncompared = [], []
    for name, check in [("tokenizer", zoo.verify_tokenizer)] + [
            (n, lambda n=n: zoo.verify(n, deep=deep)) for n in names]:
        problems = check()
        if problems and all(p.endswith(zoo.NOT_COMPARED) for p in problems):
            uncompared.append(name)         # its files are fine; the tokenizer is reported
            print(f"{name}: files OK, not compared with the code (the tokenizer does not load)")
            continue
        print(f"{name}: {'OK' if not problems else 'PROBLEMS'}", flush=True)
        for p in problems:
            print("  -", p, flush=True)
        if problems:
            bad.append(name)
    if not bad:
        print(f"zoo verify: the tokenizer and all {len(names)} checkpoints are OK")
        return 0
    broken = [n for n in bad if n != "tokenizer"]
    what = ["the tokenizer"] * ("tokenizer" in bad) + (
        [f"{len(broken)} of {len(names)} checkpoints ({', '.join(broken)})"] if broken else [])
    again = (f" Then run it again: {len(uncompared)} checkpoint(s) could not be compared with "
             "the code while the tokenizer does not load." if uncompared else "")
    print(f"zoo verify: problems with {' and '.join(what)}: each problem above says how to "
          f"fix it.{again}")
    return 1

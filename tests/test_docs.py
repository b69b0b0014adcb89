"""The docs hold together: README.md and docs/*.md link only to files that exist (and to headings
that exist in them), every `python -m amslib ...` command they show parses against the real
command-line parser, and every `make X` they show is a Makefile target.

Commands are checked as the parser sees them, never run. Commands in the docs are often
synopses, so before parsing (see `command_variants`):
- `[...]` marks an optional part; it is kept, so every option a synopsis names is checked;
- `a|b` (in one word, or `[x | y]` between options) is a choice: each choice is parsed in turn;
- a lone `...` (repeat the last part) is dropped;
- a placeholder, an upper-case word (`VIDEO`, `DIR`, `N`), a `<name>` or a shell variable
  (`$CAR`), becomes `1`, a value every option's type accepts (string, int or float);
- a shell comment (`# ...`) ends the command, and so do `;`, `&&` and a `|` outside brackets;
  a line ending in `\\` continues on the next.
So the parser checks the subcommand, the option names, the values of typed options given as
literals, the count of positional arguments and that every required option is there.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import re
import shlex
from pathlib import Path

import pytest

from amslib.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Pages that other work adds: a link to one passes while the file is missing, and is checked
# like any other once it exists (none pending now).
PENDING_PAGES: set[Path] = set()

# Written by commands (`python -m amslib claims`, `bench`, `drift`), linked from experiments.md,
# benchmarks.md and real-videos.md.
GENERATED = {"claims.md", "BENCHMARKS.md", "real_drift.md"}

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
AMSLIB = "python -m amslib"
PLACEHOLDER = re.compile(r"^(<[^<>]+>|[A-Z][A-Z0-9_]*|\$\{?\w+\}?)$")
MAKE = re.compile(r"(?<![\w./-])make[ \t]+([A-Za-z][\w.-]*)")
MAKE_TARGET = re.compile(r"^([A-Za-z][\w.-]*)[ \t]*:(?!=)", re.MULTILINE)


# --------------------------------------------------------------------------- reading a page


def split_code(text: str) -> tuple[str, list[str], list[str]]:
    """(prose with code blanked out, fenced blocks, inline code spans) of a markdown text.

    Code is blanked to spaces of the same length, so a link's text may hold inline code and no
    link or heading is found inside code."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    prose = _without_fences(text)
    spans = [" ".join(m.group(1).split()) for m in INLINE_CODE.finditer(prose)]
    prose = INLINE_CODE.sub(lambda m: "`" + re.sub(r"[^\n]", " ", m.group(1)) + "`", prose)
    return prose, blocks, spans


def _without_fences(text: str) -> str:
    return FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, without punctuation, spaces as -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(_without_fences(text)):
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(text: str, page: Path, *, pending: set[Path] = frozenset()) -> list[str]:
    """Every relative link of `text` (the page at `page`) that does not resolve, with the reason."""
    problems = []
    for target in LINK.findall(split_code(text)[0]):
        if re.match(r"[a-zA-Z][\w+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve()
        if path.startswith("/"):
            problems.append(f"{target}: make it relative to {page.name}")
        elif path and not file.exists():
            if file not in pending:
                problems.append(f"{target}: no file {file}")
        elif anchor and (not path or file.suffix == ".md"):
            if anchor not in anchors(file.read_text() if path else text):
                problems.append(f"{target}: {file.name if path else page.name} has no heading with anchor #{anchor}")
    return problems


# --------------------------------------------------------------------------- commands


def amslib_commands(text: str) -> list[str]:
    """Every `python -m amslib ...` command line of `text`, from code blocks and inline code."""
    _, blocks, spans = split_code(text)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [AMSLIB + rest for line in lines + spans for rest in line.split(AMSLIB)[1:]]


def _tokens(rest: str) -> list[str]:
    """The words after `python -m amslib`, up to a comment or a shell separator; [ and ] apart."""
    lexer = shlex.shlex(re.sub(r"([\[\]])", r" \1 ", rest), posix=True, punctuation_chars=";&")
    lexer.whitespace_split, lexer.commenters = True, "#"
    words, depth = [], 0
    for word in lexer:
        depth += word.count("[") - word.count("]")
        if word in (";", "&&", "&") or (word == "|" and depth == 0):
            break
        words.append(word)
    return words


def _expand(words: list[str]) -> list[list[str]]:
    """The variants of a synopsis: a `[x | y]` group and an `a|b` word as each choice in turn."""
    variants: list[list[list[str]]] = []  # per part, its alternatives (each a list of words)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "[":
            depth, j = 1, i + 1
            while depth and j < len(words):
                depth += {"[": 1, "]": -1}.get(words[j], 0)
                j += 1
            inner = words[i + 1:j - 1]
            groups = [list(g) for is_bar, g in itertools.groupby(
                inner, lambda w: w == "|") if not is_bar] if _top_level_bar(inner) else [inner]
            variants.append([v for g in groups for v in _expand(g)])
            i = j
            continue
        if word != "...":
            variants.append([[choice] for choice in word.split("|")] if "|" in word.strip("|") else [[word]])
        i += 1
    return [sum(choice, []) for choice in itertools.product(*variants)] if variants else [[]]


def _top_level_bar(words: list[str]) -> bool:
    depth = 0
    for word in words:
        depth += {"[": 1, "]": -1}.get(word, 0)
        if word == "|" and depth == 0:
            return True
    return False


def command_variants(command: str) -> list[list[str]]:
    """The argument lists a documented command stands for (the module docstring gives the rule)."""
    words = _tokens(command[len(AMSLIB):])
    return [["1" if PLACEHOLDER.match(w) else w for w in variant] for variant in _expand(words)]


def parse_error(argv: list[str]) -> str | None:
    """What the real parser says against `argv`, or None when it parses (`--help` parses)."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as end:
        return None if end.code == 0 else out.getvalue().strip().splitlines()[-1]
    return None


def bad_commands(text: str) -> list[str]:
    problems = []
    for command in amslib_commands(text):
        for argv in command_variants(command):
            error = parse_error(argv)
            if error:
                problems.append(f"{command!r} as {argv}: {error}")
    return problems


def make_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    return set(MAKE_TARGET.findall(makefile.read_text()))


def unknown_make_targets(text: str, targets: set[str]) -> list[str]:
    _, blocks, spans = split_code(text)
    code = "\n".join(re.sub(r"#.*", "", block) for block in blocks) + "\n" + "\n".join(spans)
    return sorted({f"make {t}" for t in MAKE.findall(code) if t not in targets})


# --------------------------------------------------------------------------- the pages


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page.read_text(), page, pending=PENDING_PAGES) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_amslib_command_parses(page):
    assert bad_commands(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_exists(page):
    assert unknown_make_targets(page.read_text(), make_targets()) == []


def test_the_readme_is_one_screen_and_links_every_topic_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(split_code(readme)[0])}
    topic_pages = {p for p in PAGES[1:] if p.name not in GENERATED}
    assert topic_pages - linked == set()
    assert PENDING_PAGES <= linked


def test_the_pages_hold_commands_and_links_to_check():
    """The checks above would pass on pages they cannot read: make sure they read these."""
    text = "\n".join(p.read_text() for p in PAGES)
    assert len(amslib_commands(text)) > 40
    assert len(LINK.findall(split_code(text)[0])) > 40
    assert {"demo", "test"} <= set(MAKE.findall(text))


# --------------------------------------------------------------------------- the checks fail


FABRICATED = """# A page

## Results of `make demo`

See [this](#results-of-make-demo), [the layout](layout.md#layout), [gone](no_such_page.md),
[bad anchor](#no-such-heading), [web](https://example.org/x.md) and
![picture](pictures/missing.png). `[not a link](nowhere.md)`

```bash
python -m amslib run --out DIR   # [fine](inside_code.md)
```
"""


def test_a_broken_link_or_anchor_is_reported(tmp_path):
    (tmp_path / "layout.md").write_text("# Layout\n")
    page = tmp_path / "page.md"
    problems = broken_links(FABRICATED, page)
    assert [p.split(":")[0] for p in problems] == ["no_such_page.md", "#no-such-heading", "pictures/missing.png"]
    assert broken_links(FABRICATED, page, pending={tmp_path / "no_such_page.md"})[0].startswith("#no-such")
    assert broken_links("[root](/README.md)", page) == ["/README.md: make it relative to page.md"]


def test_github_slugs():
    assert github_slug("Results of `make demo`") == "results-of-make-demo"
    assert github_slug("The server's time, several devices") == "the-servers-time-several-devices"
    assert github_slug("What `00_quickstart` prints") == "what-00_quickstart-prints"
    assert github_slug("[Linked](x.md) *bold* A/B") == "linked-bold-ab"
    assert anchors("# Notes\n## Notes\n```\n# not a heading\n```\n") == {"notes", "notes-1"}


@pytest.mark.parametrize("command, expected", [
    ("python -m amslib demo [--out DIR] [--quick]   # a comment", [["demo", "--out", "1", "--quick"]]),
    ("python -m amslib run --preset laptop|paper --out D", [["run", "--preset", "laptop", "--out", "1"],
                                                            ["run", "--preset", "paper", "--out", "1"]]),
    ("python -m amslib sweep X --out d [--workers N | --cluster tcp://h:1] [--set ...]",
     [["sweep", "1", "--out", "d", "--workers", "1", "--set"],
      ["sweep", "1", "--out", "d", "--cluster", "tcp://h:1", "--set"]]),
    ("python -m amslib run --video $CAR --out <dir> && ls | head", [["run", "--video", "1", "--out", "1"]]),
])
def test_a_synopsis_stands_for_its_variants(command, expected):
    assert command_variants(command) == expected


def test_a_command_the_parser_refuses_is_reported():
    text = ("`python -m amslib run --out x --no-such-option`\n"
            "```\npython -m amslib nosuch\npython -m amslib pretrain --steps many --out f\n"
            "python -m amslib run \\\n  --video v\n```\n`python -m amslib demo --help`\n")
    problems = bad_commands(text)  # code blocks first, then inline code; --help parses
    assert len(problems) == 4
    assert "invalid choice: 'nosuch'" in problems[0]
    assert "invalid int value: 'many'" in problems[1]
    assert "the following arguments are required: --out" in problems[2]
    assert "unrecognized arguments: --no-such-option" in problems[3]


def test_an_unknown_make_target_is_reported():
    text = "Run `make demo`, then\n```bash\nmake tset   # makes nothing\n```\nand make sure of it."
    assert unknown_make_targets(text, make_targets()) == ["make tset"]
    assert {"demo", "test", "bench", "claims", "clips", "imagenet", "student", "lab"} <= make_targets()

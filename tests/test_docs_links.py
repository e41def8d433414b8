"""The repository carries its own documentation: every relative link of every Markdown file
(inline, reference-style, and `<a href>`/`<img src>` in HTML) names a file inside the repository
that exists, and a `#fragment` into a Markdown file names one of its headings (GitHub's slugs)."""
import os
import subprocess
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
# Never walked when the tree is not a git checkout: not the project's documentation.
SKIPPED_FOLDERS = {".git", ".venv", "venv", "node_modules", "instance", "__pycache__",
                   ".pytest_cache", ".hypothesis"}

markdown = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_files(root):
    """The tracked Markdown files of a git checkout; otherwise every one under `root`."""
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=True).stdout.strip()
        if Path(top).resolve() == Path(root).resolve():
            listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", "*.md"],
                                    capture_output=True, text=True, check=True).stdout
            return sorted(Path(root) / name for name in listed.split("\0") if name)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS]
        found += [Path(folder) / name for name in files if name.endswith(".md")]
    return sorted(found)


class HtmlTargets(HTMLParser):
    """`href`/`src` of `<a>` and `<img>`, and the `id`/`name` anchors, in a piece of HTML."""

    def __init__(self):
        super().__init__()
        self.targets, self.anchors = [], []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.targets.append(attributes["href"])
        if tag == "img" and attributes.get("src"):
            self.targets.append(attributes["src"])
        for name in ("id", "name"):
            if attributes.get(name):
                self.anchors.append(attributes[name])


def github_slug(text):
    """GitHub's anchor for a heading: lower case; letters, digits, marks, `_`, `-` and
    spaces kept, every other character dropped; each space a `-`."""
    kept = "".join(char for char in text.strip().lower()
                   if char in "-_ " or unicodedata.category(char)[0] in "LNM")
    return kept.replace(" ", "-")


def heading_text(inline):
    return "".join(child.content for child in inline.children or ()
                   if child.type in ("text", "code_inline"))


def parsed(path):
    """(link targets, anchors) of one Markdown file."""
    env = {}
    tokens = markdown.parse(path.read_text(encoding="utf-8"), env)
    targets, anchors, seen = [], [], {}
    html = HtmlTargets()
    for position, token in enumerate(tokens):
        if token.type == "html_block":
            html.feed(token.content)
        if token.type == "heading_open":
            slug = github_slug(heading_text(tokens[position + 1]))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.append(slug if count == 0 else f"{slug}-{count}")
        for child in token.children or ():
            if child.type == "link_open":
                targets.append(child.attrs["href"])
            elif child.type == "image":
                targets.append(child.attrs["src"])
            elif child.type == "html_inline":
                html.feed(child.content)
    # Reference definitions, used or not (used ones are links above as well).
    targets += [reference["href"] for reference in env.get("references", {}).values()]
    html.close()
    return targets + html.targets, anchors + html.anchors


def broken_links(root):
    """Every relative link under `root` that names a missing file, leaves `root`, or names
    a heading its Markdown file does not have: "file: target (why)"."""
    root = Path(root).resolve()
    files = markdown_files(root)
    anchors_of = {}

    def anchors(path):
        if path not in anchors_of:
            anchors_of[path] = set(parsed(path)[1])
        return anchors_of[path]

    problems = []
    for path in files:
        path = path.resolve()
        for target in dict.fromkeys(parsed(path)[0]):  # each target once per file
            parts = urlsplit(target)
            if parts.scheme or target.startswith("//"):
                continue  # a URL (https:, mailto:, ...): not the repository's to check
            name = f"{path.relative_to(root)}: {target}"
            linked = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not linked.is_relative_to(root):
                problems.append(f"{name} (outside the repository)")
            elif not linked.exists():
                problems.append(f"{name} (no such file)")
            elif (parts.fragment and linked.suffix == ".md"
                  and unquote(parts.fragment) not in anchors(linked)):
                problems.append(f"{name} (no such heading)")
    return problems


def test_every_relative_link_of_the_repository_resolves():
    assert markdown_files(ROOT), "no Markdown file found"
    assert broken_links(ROOT) == []


def test_the_checker_finds_missing_files_links_outside_and_missing_headings(tmp_path):
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("# Outside\n", encoding="utf-8")
    (project / "docs" / "API.md").write_text(
        "# 1. Conventions\n\n## Stream events\n\n## Stream events\n\n"
        "### 2. Auth `/api/auth`\n\n## 会话 列表\n\n<a id=\"custom\"></a>\n", encoding="utf-8")
    (project / "logo.png").write_bytes(b"\x89PNG")
    (project / "README.md").write_text(
        "# Project\n\n"
        "Good: [api](docs/API.md), [conv](docs/API.md#1-conventions), "
        "[second](docs/API.md#stream-events-1), [auth](docs/API.md#2-auth-apiauth), "
        "[zh](docs/API.md#会话-列表), [custom](docs/API.md#custom), [self](#project), "
        "[web](https://example.com/x.md), [mail](mailto:a@example.com), ![logo](logo.png), "
        "[folder](docs/), [ref ok][ok].\n\n"
        "Broken: [gone](docs/GONE.md), [up](../outside.md), [anchor](docs/API.md#nope), "
        "[here](#nowhere), [ref][bad], <img src=\"missing.png\">, ![pic](missing.jpg).\n\n"
        "    [in code](not/a/link.md)\n\n"
        "`[in a code span](also/not.md)`\n\n"
        "[ok]: docs/API.md\n[bad]: ../../etc/passwd\n[unused]: nowhere.md\n",
        encoding="utf-8")

    assert sorted(broken_links(project)) == sorted([
        "README.md: docs/GONE.md (no such file)",
        "README.md: ../outside.md (outside the repository)",
        "README.md: docs/API.md#nope (no such heading)",
        "README.md: #nowhere (no such heading)",
        "README.md: ../../etc/passwd (outside the repository)",
        "README.md: missing.png (no such file)",
        "README.md: missing.jpg (no such file)",
        "README.md: nowhere.md (no such file)",
    ])


def test_the_checker_passes_a_tree_whose_links_all_resolve(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "GLM.md").write_text("# GLM\n\nBack to [the README](../README.md#top).\n",
                                              encoding="utf-8")
    (tmp_path / "README.md").write_text("# Top\n\nSee [GLM](docs/GLM.md#glm).\n",
                                        encoding="utf-8")

    assert broken_links(tmp_path) == []

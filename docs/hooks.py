"""mkdocs hook: an API page's ``::: ionkinetics.<package>`` block gets the package's public names as
its members list, read from the package's ``__init__.py``: ``__all__`` where it has one, else every
explicit re-export ``from ._module import Name as Name`` (the project's convention for a public name;
mkdocstrings would otherwise skip names a package imports). So the API pages follow the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
_BLOCK = re.compile(r"^::: (ionkinetics(?:\.\w+)?)\s*\n(?:    options:\n)?", re.M)


def public_names(package: str) -> list[str]:
    """The public names of ``package`` (a dotted name under src/), in the order its __init__ gives them."""
    init = SRC.joinpath(*package.split(".")) / "__init__.py"
    tree = ast.parse(init.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [n for n in ast.literal_eval(node.value) if not n.startswith("_")]
    names = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            names += [a.asname for a in node.names if a.asname and a.asname == a.name and not a.name.startswith("_")]
    return list(dict.fromkeys(names))


def on_page_markdown(markdown: str, page, config, files) -> str:
    if not page.file.src_uri.startswith("api/") or page.file.src_uri == "api/ionkinetics.md":
        return markdown

    def expand(m: re.Match) -> str:
        names = public_names(m.group(1))
        listed = "\n".join(f"        - {n}" for n in names)
        return f"::: {m.group(1)}\n    options:\n      members:\n{listed}\n"

    return _BLOCK.sub(expand, markdown, count=1)

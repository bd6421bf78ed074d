"""Read a YAML settings file safely: plain data only, YAML 1.2 numbers, the line of every key, one-line errors."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError

#: a location inside a document: mapping keys and list indices from the top, e.g. ("methods", 1, "lr")
Path_ = tuple


class _Loader(yaml.SafeLoader):
    """SafeLoader (no Python tags) that reads ``1e-3`` as a number, as YAML 1.2 and JSON do (YAML 1.1 needs
    ``1.0e-3``; a learning rate written ``1e-3`` would otherwise arrive as a string)."""


_FLOAT = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != _FLOAT]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_FLOAT, re.compile(r"""^(?:
     [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


def where(source: str, lines: dict[Path_, int], path: Path_ = (), field: bool = False) -> str:
    """``source, line N, a.b[2]``: the place of ``path`` in the file (the nearest enclosing line known). With
    ``field`` the last item of ``path`` is a field the message names itself: only its line is used."""
    p = tuple(path)
    while p and p not in lines:
        p = p[:-1]
    out = source
    if p in lines:
        out += f", line {lines[p]}"
    path = tuple(path)[:-1] if field else tuple(path)
    if path:
        out += ", " + "".join(f"[{k}]" if isinstance(k, int) else (f".{k}" if i else str(k))
                              for i, k in enumerate(path))
    return out


def read_yaml(path: str | Path, what: str = "config file") -> tuple[Any, dict[Path_, int], str]:
    """The data of one YAML document, the line of each key/item, and the label naming the file in errors."""
    label = f"{what} {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{label}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise SpecError(f"{label}: cannot read: {e.strerror or e}") from None
    return (*parse_yaml(text, label), label)


def parse_yaml(text: str, label: str) -> tuple[Any, dict[Path_, int]]:
    """Data and key lines of the YAML ``text``; any YAML error is one SpecError line naming ``label``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f", line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(e.problem or e.context or "invalid YAML").split())
        raise SpecError(f"{label}{at}: invalid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{label}: invalid YAML: {' '.join(str(e).split())}") from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines, label)
    return data, lines


def _walk(node, path: Path_, lines: dict[Path_, int], label: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            if key in seen:
                raise SpecError(f"{label}, line {k.start_mark.line + 1}: key '{key}' appears twice")
            seen.add(key)
            _walk(v, (*path, key), lines, label)
            lines[(*path, key)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, (*path, i), lines, label)

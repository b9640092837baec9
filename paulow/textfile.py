"""Text files a user hands in (config files, palettes, classes.txt): read as UTF-8 (a UTF-8 BOM is
skipped, a UTF-16 BOM decodes as UTF-16), size-capped, and YAML parsed safely: keys stay texts
(`yes: true` is the key "yes", not True), and aliases cannot expand beyond a bound (no billion
laughs). Every problem is one `UsageError` line naming the file and the fix."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

from . import limits
from .errors import UsageError

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def read_text(path: str | Path, what: str, fix: str) -> str:
    """The text of `path` (`what`: e.g. "config file"; `fix`: the option that names it)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.MAX_TEXT_BYTES:
            raise UsageError(
                f"{what} '{path}' is {size / 2**20:.1f} MiB, more than the "
                f"{limits.MAX_TEXT_BYTES >> 20} MiB a text file may hold: is it the right file? - {fix}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} '{path}' cannot be read ({exc.strerror or exc}): {fix}") from None
    try:
        if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16: FF FE 00 00
            return data.decode("utf-32")
        if data.startswith(_UTF16_BOMS):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} '{path}' is not UTF-8 text (byte 0x{data[exc.start]:02x} at position "
            f"{exc.start}): save it as UTF-8 (e.g. in a text editor's 'Save as') - {fix}"
        ) from None


def _loader_class():
    import yaml

    class StringKeyLoader(yaml.SafeLoader):
        """SafeLoader whose mapping keys stay as written (texts), so `yes:`/`on:` are not True."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                for key_node, _ in node.value:
                    if isinstance(key_node, yaml.ScalarNode):
                        key_node.tag = "tag:yaml.org,2002:str"
            return super().construct_mapping(node, deep=deep)

    return StringKeyLoader


def _expanded_size(node, limit: int) -> int:
    """Nodes the document would have with every alias expanded, counted with memoisation (aliases
    share node objects), stopping above `limit`."""
    import yaml

    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack = [(node, False)]
    while stack:
        current, children_done = stack.pop()
        if id(current) in sizes:
            continue
        if not children_done and id(current) in visiting:
            return limit + 1  # an alias inside its own anchor: endless
        visiting.add(id(current))
        children = []
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [n for pair in current.value for n in pair]
        if children_done or not children:
            sizes[id(current)] = min(limit + 1, 1 + sum(sizes.get(id(c), 0) for c in children))
            continue
        stack.append((current, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes.get(id(node), 0)


def load_yaml(text: str, path: str | Path, fix: str) -> Any:
    """The YAML document in `text` (plain data only; keys kept as texts)."""
    import yaml

    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, limits.MAX_YAML_NODES) > limits.MAX_YAML_NODES:
            raise UsageError(
                f"config file '{path}' expands to more than {limits.MAX_YAML_NODES} values "
                f"through its aliases (&name/*name): write the values out - {fix}"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise UsageError(
            f"config file '{path}' is nested too deeply to read: write it flat - {fix}"
        ) from None
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())[:200]
        raise UsageError(f"config file '{path}' is not valid YAML ({first}): fix the file - {fix}") from None
    finally:
        loader.dispose()

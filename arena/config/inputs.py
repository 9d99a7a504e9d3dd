"""Reading an input file without trusting it: a regular file of bounded size, YAML of bounded shape.

- `InputLimits`: the caps (file size, alias expansion, nesting depth, plan size) and whether a big
  plan was confirmed (`--yes`); the CLI builds them from its flags and passes them down.
- `read_input(path, limits)`: the file's bytes, after `os.stat` says it is a regular file no larger
  than the cap. A FIFO, `/dev/zero` or a directory is refused before it is opened, so nothing
  blocks or reads forever; the file is then opened non-blocking and checked again (it may have
  been swapped since), and never more than the cap is read.
- `StrictLoader`: PyYAML's safe loader, with hooks (`compose_node`, the int constructor) that
  refuse a key written twice in one mapping (PyYAML would keep the last silently), aliases
  expanding to more than `max_alias_nodes` nodes (a "billion laughs" file: nine levels of ten
  aliases is 10^9 nodes from a few hundred bytes, which PyYAML builds as shared references but
  every reader then walks in full), nesting deeper than `max_depth`, and integers too long to
  convert. Each refusal is a one-line `ConfigError` at the line where the problem starts, naming
  the field where it can (`models[1].backend: duplicate key`).

Every refusal names the file, and says what to do when the input is legitimate (`--max-input-mb`,
`--yes`).

Simplified on purpose: an alias inside its own anchor (a recursive structure) is counted as one
node and left to the schema to refuse, as `arena.config.load` records its positions once; the
limits hold per file, not across files.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from arena.config.errors import field_text
from arena.core.errors import ConfigError

MB = 2**20
"""Bytes in a megabyte, as `--max-input-mb` counts them."""


@dataclass(frozen=True)
class InputLimits:
    """How much an input may hold before it is refused."""

    max_bytes: int = 10 * MB
    """Largest input file (`--max-input-mb`)."""
    max_alias_nodes: int = 10_000
    """Most nodes all YAML aliases of one file may expand to, together."""
    max_depth: int = 64
    """Deepest nesting of YAML collections."""
    max_unconfirmed_units: int = 100_000
    """Largest plan (debates) run without `--yes`."""
    confirmed: bool = False
    """`--yes`: run a plan of any size."""


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def _megabytes(size: int) -> str:
    """A size in MB, or in bytes when it would read as 0.0 MB."""
    return f"{size / MB:,.1f} MB" if size >= MB / 10 else f"{size:,} bytes"


def read_input(path: Path, limits: InputLimits | None = None) -> bytes:
    """The bytes of an input file, refused unless it is a regular file within the size cap."""
    limits = limits or InputLimits()
    source = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(source, None, "file not found") from None
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read: {exc.strerror or exc}") from None
    _check_file(source, info, limits)
    try:
        # Non-blocking: should the path have become a FIFO since the stat, open does not wait
        # for a writer, and the fstat below refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as file:
        _check_file(source, os.fstat(file.fileno()), limits)
        try:
            data = file.read(limits.max_bytes + 1)
        except OSError as exc:
            raise ConfigError(source, None, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:  # it grew after the stat
        raise ConfigError(source, None, _over_cap(len(data), limits))
    return data


def _check_file(source: str, info: os.stat_result, limits: InputLimits) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(source, None, "is a directory, not a YAML file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(source, None, f"is {_kind(info.st_mode)}, not a regular file")
    if info.st_size > limits.max_bytes:
        raise ConfigError(source, None, _over_cap(info.st_size, limits))


def _over_cap(size: int, limits: InputLimits) -> str:
    return (
        f"file is {_megabytes(size)}, over the {_megabytes(limits.max_bytes)} limit "
        "(raise it with --max-input-mb)"
    )


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader: no duplicate keys, bounded alias expansion and depth, one-line errors.

    `list_root`: when the document is a list, error paths start with this key (as in
    `arena.config.load.parse_yaml`)."""

    def __init__(
        self,
        stream: str,
        source: str,
        limits: InputLimits | None = None,
        *,
        list_root: str | None = None,
    ):
        super().__init__(stream)
        self.source = source
        self.limits = limits or InputLimits()
        self.list_root = list_root
        self._alias_nodes = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}
        self._path: list[str | int] = []
        self._keys: dict[int, dict[tuple[str, Any], int]] = {}

    def _fail(self, mark: Any, problem: str, path: list[str | int] | None = None) -> ConfigError:
        line = getattr(mark, "line", None)
        field = field_text(path) if path else None
        return ConfigError(self.source, field, problem, line + 1 if line is not None else None)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """PyYAML's hook for every node: keep the path, refuse a repeated key, charge aliases to
        the budget, bound the depth. `index` is the key node of a mapping's value, the position
        of a list's item, None for a mapping's key or the document's root."""
        event = self.peek_event()  # type: ignore[no-untyped-call]
        step: list[str | int] = []
        if parent is None and self.list_root and isinstance(event, yaml.SequenceStartEvent):
            step = [self.list_root]
        elif isinstance(index, yaml.ScalarNode) and isinstance(parent, yaml.MappingNode):
            step = [str(index.value)]
            self._check_key(parent, index)
        elif isinstance(index, int):
            step = [index]
        self._path.extend(step)
        try:
            return self._compose(parent, index, event)
        finally:
            del self._path[len(self._path) - len(step) :]

    def _check_key(self, mapping: yaml.MappingNode, key: yaml.ScalarNode) -> None:
        """Refuse a key already written in this mapping (YAML forbids it; PyYAML keeps the
        last). Merge keys (`<<`) are not keys of the mapping and may repeat."""
        if key.tag == "tag:yaml.org,2002:merge":
            return
        seen = self._keys.setdefault(id(mapping), {})
        first = seen.get((key.tag, key.value))
        if first is not None:
            raise self._fail(
                key.start_mark,
                f"duplicate key (first written at line {first})",
                [*self._path, str(key.value)],
            )
        seen[(key.tag, key.value)] = key.start_mark.line + 1

    def _compose(self, parent: yaml.Node | None, index: Any, event: Any) -> yaml.Node | None:
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor or "")
            if target is not None:
                self._alias_nodes += self._expanded_size(target)
                if self._alias_nodes > self.limits.max_alias_nodes:
                    raise self._fail(
                        event.start_mark,
                        f"aliases expand to more than {self.limits.max_alias_nodes:,} nodes "
                        "(nested aliases, a 'billion laughs'?); write the values out instead",
                    )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > self.limits.max_depth:
                problem = f"nested more than {self.limits.max_depth} levels deep"
                raise self._fail(event.start_mark, problem)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _expanded_size(self, node: yaml.Node) -> int:
        """How many nodes `node` stands for with every alias in it written out; a node that
        contains itself counts once where it recurs, and a node still being composed (an alias
        to an enclosing anchor) counts as one."""
        if node.end_mark is None:
            return 1
        return self._size(node, set())

    def _size(self, node: yaml.Node, visiting: set[int]) -> int:
        key = id(node)
        known = self._sizes.get(key)
        if known is not None:
            return known
        if key in visiting or node.end_mark is None:
            return 1
        visiting.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(self._size(child, visiting) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += self._size(k, visiting) + self._size(v, visiting)
        visiting.discard(key)
        self._sizes[key] = total
        return total

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """An integer, refused in one line when it has too many digits to convert."""
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise self._fail(
                node.start_mark, f"integer too long ({len(node.value):,} characters)"
            ) from None


StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)

"""YAML for contracts, without YAML's surprises.

- A key written twice in one mapping is an error (plain YAML keeps the last one silently).
- Aliases (`*name`) are refused: a contract is small enough to write out, and an alias bomb
  (nested aliases that expand exponentially) would otherwise hang every code location's load.
"""

from __future__ import annotations

import yaml

_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: 10x faster


class YamlProblem(ValueError):
    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


class _Loader(_BASE):
    def construct_object(self, node, deep=False):
        # An anchored node met a second time is an alias of it.
        if node in self.constructed_objects or node in self.recursive_objects:
            raise YamlProblem("aliases (*name) are not allowed in contracts", node.start_mark.line + 1)
        return super().construct_object(node, deep)

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = key_node.value
            if key in seen:
                raise YamlProblem(f"key '{key}' appears twice in one mapping", key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load(text: str):
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not valid YAML: {exc}") from None

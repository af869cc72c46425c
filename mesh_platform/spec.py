"""What a domain team writes next to a contract: a function marked with `@product`.

A leaf module (no Dagster, no DuckDB), so that product files import cheaply and anything may
import it without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_KEY = re.compile(r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*(@[1-9][0-9]*)?$")


@dataclass(frozen=True)
class ProductSpec:
    fn: Callable
    sources: tuple[str, ...]
    inputs: tuple[str, ...]  # other products, "domain/name" (resolved: a pinned major's own product)
    # How the function names its inputs, where that differs from the product read: a pinned
    # major "domain/name@1" read from the product "domain/name_v1".
    written: tuple[tuple[str, str], ...] = ()


def product(*, sources: tuple[str, ...] | list[str] = (), inputs: tuple[str, ...] | list[str] = ()):
    """Mark a function as the code that fills the contract of the same name.

    sources: this domain's landing sources it reads (`ctx.source(name)`).
    inputs:  other products it reads, as "domain/product" (`ctx.product("domain/product")`): the
             latest major version, or "domain/product@N" for major version N while it is served.
    """

    def mark(fn: Callable) -> Callable:
        bad = [i for i in inputs if not isinstance(i, str) or not _KEY.match(i)]
        if bad:
            raise ValueError(f"@product {fn.__name__}: inputs must be 'domain/product' or 'domain/product@N', got {bad}")
        fn.mesh_product = ProductSpec(fn=fn, sources=tuple(sources), inputs=tuple(inputs))
        return fn

    return mark

"""Relay-style cursor connections (at most ``MAX_PAGE`` nodes a page)."""

from __future__ import annotations

from typing import Generic, TypeVar

import strawberry

MAX_PAGE = 100
DEFAULT_PAGE = 50

Node = TypeVar("Node")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[Node]):
    cursor: str
    node: Node


@strawberry.type(description="A page of a list, in a stable order; pass `endCursor` as `after`.")
class Connection(Generic[Node]):
    edges: list[Edge[Node]]
    nodes: list[Node]
    page_info: PageInfo

"""What every API blueprint shares: pagination defaults and the auth doc."""

from __future__ import annotations

from flask_smorest import Blueprint as SmorestBlueprint

BEARER = [{"bearerAuth": []}]


class ApiBlueprint(SmorestBlueprint):
    """flask-smorest blueprint with the API's paging (default 50, at most 500)."""

    DEFAULT_PAGINATION_PARAMETERS = {"page": 1, "page_size": 50, "max_page_size": 500}


def page_slice(pagination_parameters, total: int) -> tuple[int, int]:
    """Record the total for X-Pagination; return (offset, limit)."""
    pagination_parameters.item_count = total
    return pagination_parameters.first_item, pagination_parameters.page_size

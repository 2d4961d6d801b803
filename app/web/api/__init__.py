"""The JSON API under /api/v1, one router per area, and the parameter types they share."""

import json
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from app.models import MAX_ID
from app.net.text import has_lone_surrogate

# A row id in a path or a query string: a bigger number is refused with 422 before any query sees it.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
RowIdFilter = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def _valid_unicode(body: Any) -> Any:
    """Refuse a JSON body with text that is not Unicode: a lone surrogate ("\\ud800" is valid JSON) can be
    neither stored nor sent anywhere. Typed bodies get this from pydantic; free-form ones need it here."""
    stack: list[tuple[str, Any]] = [("body", body)]
    while stack:  # (no recursion: a body may nest deeper than Python's stack)
        where, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                stack += [(where, key), (f"{where}[{json.dumps(key)}]", item)]
        elif isinstance(value, list):
            stack += [(f"{where}[{index}]", item) for index, item in enumerate(value)]
        elif isinstance(value, str) and has_lone_surrogate(value):
            raise PydanticCustomError(
                "unicode", "{where} holds text that is not valid Unicode (a lone surrogate)", {"where": where}
            )
    return body


# For Annotated[dict[str, Any], Body(), UnicodeOnly]: a free-form JSON object with nothing but valid text.
UnicodeOnly = AfterValidator(_valid_unicode)

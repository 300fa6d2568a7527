"""A row of search.bench's table: what was measured, in which setting, the result."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
    what: str
    setting: str
    result: str
    speedup: float | None  # over the plain pipeline, as the table's footnote defines per row
    figures: dict  # the raw measurements, for --json
    detail: str = ""  # printed below the table (the profiler's top operations)

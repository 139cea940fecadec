"""License filter: keep only records whose license is on the allow-list in `[clean].licenses`.

Every record carries the license of its source (an SPDX id such as "CC0-1.0", or
"unknown"), and lineage carries it on to the content a model makes. Filtering here,
first in the pipeline, means a record under a license the organisation cannot use
never reaches a model. SPDX ids are matched case-insensitively, as the SPDX spec
says they should be.
"""

from __future__ import annotations

from genloop.data.pipeline import Reason, StepOutput, check_each
from genloop.data.record import Record


class LicenseFilter:
    """Drop records whose license is not in `allowed` (`None` allows every license)."""

    name = "license"
    parallel_safe = True  # depends on the record alone: may run on any worker

    def __init__(self, allowed: list[str] | None) -> None:
        self.allowed = allowed
        self._folded = None if allowed is None else {license_.casefold() for license_ in allowed}

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check)

    def check(self, record: Record) -> Record | str:
        if self._folded is None or record.license.casefold() in self._folded:
            return record
        listed = ", ".join(self.allowed or [])
        return Reason(
            f"license {record.license!r} not in the allow-list [{listed}]", kind="license not allowed"
        )

"""Build hook: ship the repository's example workflows with the package.

``lightflow config examples DIR`` copies them out of the installed package. They live
at the repository's root (``examples/``, next to the docs that explain them), outside
this package's folder, so the hook adds them: to a wheel as ``lightflow/examples``, and
to an sdist inside the package source (``src/lightflow/examples``), where a wheel built
from that sdist finds them without the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Adds ``../../examples`` when building from the repository."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        examples = (Path(self.root) / ".." / ".." / "examples").resolve()
        if version == "editable" or not examples.is_dir():
            return  # editable: read from the repository; from an sdist: already inside
        target = "lightflow/examples" if self.target_name == "wheel" else "src/lightflow/examples"
        build_data["force_include"][str(examples)] = target

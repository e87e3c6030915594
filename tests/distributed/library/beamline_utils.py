"""Shared code a workflow imports from a configured `libraries` folder."""


def detector_name(index: int) -> str:
    return f"pilatus-{index}"

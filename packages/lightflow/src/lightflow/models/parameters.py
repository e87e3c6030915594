"""Workflow parameters: the ``key=value`` arguments a workflow declares and accepts.

A workflow file may define ``parameters = Parameters([Option(...), ...])``. Arguments
from the command line are strings; each :class:`Option` converts them to its type.
Options without a default are required. The consolidated values are written to the
run's data store (DATA section) before the first task runs, where tasks read them with
``store.get(name)``, as in 1.x.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..exceptions import ParameterError

_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


class Option:
    """One parameter of a workflow.

    Args:
        name: The parameter's name, used as ``name=value`` and as the store key.
        default: The value when none is given; ``None`` makes the option required.
        help: One line shown by ``lightflow workflow list -d`` style listings.
        type: Conversion applied to a string argument: ``str``, ``int``, ``float``,
            ``bool`` or any callable taking a string.
    """

    def __init__(
        self,
        name: str,
        default: Any = None,
        help: str | None = None,
        type: Callable[[str], Any] = str,
    ) -> None:
        self.name = name
        self.default = default
        self.help = help
        self.type = type

    @property
    def required(self) -> bool:
        """Whether the workflow refuses to start without a value for this option."""
        return self.default is None

    def convert(self, value: Any) -> Any:
        """Convert a (string) argument to the option's type.

        Raises:
            ParameterError: The value cannot be converted.
        """
        if not isinstance(value, str):
            return value
        type_name = getattr(self.type, "__name__", str(self.type))
        if self.type is bool:
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ParameterError(
                f"parameter '{self.name}' expects a bool (true/false), got {value!r}"
            )
        try:
            return self.type(value)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                f"parameter '{self.name}' expects {type_name}, got {value!r}"
            ) from exc

    def default_value(self) -> Any:
        """The default converted to the option's type, as an argument would be.

        Raises:
            ParameterError: The workflow's own default cannot be converted: a fault of
                the workflow file, said as such (the user typed nothing wrong).
        """
        try:
            return self.convert(self.default)
        except ParameterError:
            type_name = getattr(self.type, "__name__", str(self.type))
            raise ParameterError(
                f"the workflow's default of parameter '{self.name}' ({self.default!r}) is "
                f"not a valid {type_name}: fix Option('{self.name}', default=...) in the "
                f"workflow file, or give {self.name}=VALUE"
            ) from None

    def __repr__(self) -> str:
        return f"Option({self.name!r}, default={self.default!r}, type={self.type!r})"


class Parameters(list):
    """The list of :class:`Option` a workflow accepts."""

    def __init__(self, options: Iterable[Option] = ()) -> None:
        super().__init__(options)

    def get_option(self, name: str) -> Option | None:
        """Return the option called ``name``, or ``None``."""
        return next((option for option in self if option.name == name), None)

    def check_missing(self, args: Mapping[str, Any]) -> list[str]:
        """Return the names of required options that ``args`` does not provide."""
        return [option.name for option in self if option.required and option.name not in args]

    def consolidate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``args`` and return every option's value, converted to its type.

        Raises:
            ParameterError: An argument is unknown, missing or of the wrong type.
        """
        known = {option.name for option in self}
        unknown = [name for name in args if name not in known]
        if unknown:
            accepted = ", ".join(sorted(known)) or "none"
            raise ParameterError(
                f"unknown parameter '{unknown[0]}' (this workflow accepts: {accepted})"
            )
        missing = self.check_missing(args)
        if missing:
            raise ParameterError(
                f"missing required parameter '{missing[0]}': add {missing[0]}=VALUE"
            )
        # Defaults are converted too: Option('n', default='5', type=int) is 5.
        return {
            option.name: option.convert(args[option.name])
            if option.name in args
            else option.default_value()
            for option in self
        }

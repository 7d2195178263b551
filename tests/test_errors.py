"""Every user-facing error class of ppdet derives from ppdet.PpdetError, so every tool prints
them the same way (one ``error:`` line)."""

import importlib
import pkgutil

import ppdet
from ppdet.errors import PpdetError

# Exception classes that are not user errors: internal signals, never shown to a user as an
# error (TrainingStopped: a requested stop, printed by engine/cli.run with its own status).
INTERNAL = {
    "ppdet.zoo.download._Retryable",
    "ppdet.zoo.__main__._Fail",
    "ppdet.engine.stop.TrainingStopped",
}


def test_every_error_class_is_a_ppdet_error():
    ppdet.register_all()
    found = []
    for mod in pkgutil.walk_packages(ppdet.__path__, "ppdet."):
        module = importlib.import_module(mod.name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Exception)
                and obj.__module__ == module.__name__
            ):
                found.append(obj)
    names = {f"{c.__module__}.{c.__qualname__}" for c in found}
    assert "ppdet.checkpoint.report.WeightsError" in names  # the walk reached the packages
    stray = sorted(
        n
        for c, n in zip(found, [f"{c.__module__}.{c.__qualname__}" for c in found])
        if not issubclass(c, PpdetError) and n not in INTERNAL
    )
    assert stray == []

"""Export errors: each names the layer/op/file and what was expected."""


class ExportError(ValueError):
    """Base for export failures a user can act on."""


class UnsupportedOpError(ExportError):
    """An op the chosen target cannot run. One line: the op, the layer, the target, and either the
    targets that would accept the model or (without a target) the ops that are supported."""

    def __init__(self, op, layer, supported=(), *, target=None, accepted_by=None, module=""):
        self.op, self.layer, self.supported = op, layer, sorted(supported)
        self.target, self.accepted_by, self.module = target, list(accepted_by or []), module
        at = f"unsupported op {op!r} at layer {layer!r}" + (f" ({module})" if module else "")
        if target is None:
            super().__init__(f"{at}; supported ops are: {', '.join(self.supported)}")
            return
        others = [t for t in self.accepted_by if t != target]
        where = f"targets that accept this model: {', '.join(others)}" if others else \
            "no other export target accepts this model's ops"
        super().__init__(f"{at} for target {target!r}; {where}")


class ParityError(ExportError):
    """An export disagrees with the PyTorch model beyond its threshold."""

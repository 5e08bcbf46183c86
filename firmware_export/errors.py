"""Export errors: each names the layer/op/file and what was expected."""


class ExportError(ValueError):
    """Base for export failures a user can act on."""


class UnsupportedOpError(ExportError):
    def __init__(self, op, layer, supported):
        self.op, self.layer, self.supported = op, layer, sorted(supported)
        super().__init__(f"unsupported op {op!r} at layer {layer!r}; supported ops are: {', '.join(self.supported)}")


class ParityError(ExportError):
    """An export disagrees with the PyTorch model beyond its threshold."""

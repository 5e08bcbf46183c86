"""A small .tflite writer for tests: hand-built int8 graphs of one or more ops, with per-tensor or
per-channel quantization, for checking kernels against TFLite's reference arithmetic."""
import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

INT8, INT32 = fb.TensorType.INT8, fb.TensorType.INT32


def options(cls, **fields):
    """A builtin-options object (``fb.Conv2DOptionsT`` etc.) with ``fields`` set."""
    o = cls()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


class Graph:
    def __init__(self):
        self.tensors, self.buffers, self.ops, self.codes = [], [fb.BufferT()], [], []

    def tensor(self, shape, dtype=INT8, scale=None, zp=0, qdim=0, data=None, name=None) -> int:
        """A tensor (with its buffer); ``scale``/``zp`` scalars or per-channel arrays along ``qdim``."""
        t = fb.TensorT()
        t.shape, t.type, t.name = list(shape), dtype, name or f"t{len(self.tensors)}"
        if scale is not None:
            q = fb.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(zp if zp is not None else 0)]
            if len(q.zeroPoint) != len(q.scale):
                q.zeroPoint = q.zeroPoint * len(q.scale)
            q.quantizedDimension = qdim
            t.quantization = q
        b = fb.BufferT()
        if data is not None:
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8).tolist()
        self.buffers.append(b)
        t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, values, dtype=INT32, scale=None, zp=0) -> int:
        values = np.asarray(values, dtype=np.int8 if dtype == INT8 else np.int32)
        return self.tensor(values.shape, dtype, scale, zp, data=values)

    def op(self, code, inputs, outputs, options_type=fb.BuiltinOptions.NONE, options=None):
        if code not in self.codes:
            self.codes.append(code)
        o = fb.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)
        return outputs[0]

    def finish(self, graph_in, graph_out) -> bytes:
        codes = []
        for c in self.codes:
            oc = fb.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), 1
            codes.append(oc)
        sg = fb.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators = self.tensors, list(graph_in), list(graph_out), self.ops
        m = fb.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, codes, [sg], self.buffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def one_op(self, code, inputs, outputs, options_type, options, graph_in, graph_out) -> bytes:
        """A single-op model: ``op`` then ``finish``."""
        self.op(code, inputs, outputs, options_type, options)
        return self.finish(graph_in, graph_out)

"""Checks ONNX files written by Glia's exporter with the official checker (Debian python3-onnx).

usage: onnx_check.py model.onnx [model.onnx ...]

For each file: onnx.checker.check_model(full_check=True) (schema, types, shape inference), then
prints one line "<path> opset=<n> inputs=<name:dims;...> outputs=<...> ops=<Type:count,...>" where
symbolic dims show as their parameter name and node types are sorted. Exit status 1 with the checker's message on the first failure.
"""
import sys

import onnx


def dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.HasField("dim_param") else str(d.dim_value))
    return value_info.name + ":" + ",".join(out)


def main(paths):
    for path in paths:
        model = onnx.load(path)
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # the checker raises several types
            print(f"{path}: {type(e).__name__}: {e}")
            return 1
        opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
        counts = {}
        for node in model.graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
        print(f"{path} opset={opset[0] if opset else '?'} "
              f"inputs={';'.join(dims(i) for i in model.graph.input)} "
              f"outputs={';'.join(dims(o) for o in model.graph.output)} "
              f"ops={','.join(f'{k}:{v}' for k, v in sorted(counts.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

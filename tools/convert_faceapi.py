#!/usr/bin/env python3
"""Convert face-api.js TF.js weights (uint8-quantized) into ONNX graphs.

The layer order, padding and constants follow the package's own TypeScript sources
(`package/src/ssdMobilenetv1`, `tinyYolov2`, `faceFeatureExtractor`, `faceLandmarkNet`,
`faceRecognitionNet`). Every graph takes a normalised NCHW float tensor; the pixel
normalisation itself is data in `models/models.toml` and is applied by the Rust side.

Both detectors end in the same contract so that one Rust detector serves both:
  boxes  [1, N, 4]  x0, y0, x1, y1 relative to the bottom/right-padded square input
  scores [1, N]     face probability

usage: convert_faceapi.py PACKAGE_DIR MODELS_DIR
  converts the models whose file is missing or differs from models/models.toml, then
  checks every sha256 against it
"""

import hashlib
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# The constant tfjs uses for its batch norm in MobileNetV1 (float32 of 1e-3).
SSD_BN_EPSILON = 0.0010000000474974513
TINY_ANCHORS = [
    (1.603231, 2.094468),
    (6.041143, 7.080126),
    (2.882459, 3.518061),
    (4.266906, 5.178857),
    (9.041765, 10.66308),
]


def load_weights(model_dir: Path, name: str) -> dict:
    """Read a TF.js weights manifest; dequantize uint8 weights as tfjs does (q*scale+min)."""
    manifest = json.loads((model_dir / f"{name}-weights_manifest.json").read_text())
    weights = {}
    for group in manifest:
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = spec["shape"]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant:
                assert quant["dtype"] == "uint8", quant
                q = np.frombuffer(blob, np.uint8, count, offset).astype(np.float64)
                offset += count
                value = (q * quant["scale"] + quant["min"]).astype(np.float32)
            else:
                assert spec["dtype"] == "float32", spec
                value = np.frombuffer(blob, np.float32, count, offset).copy()
                offset += 4 * count
            weights[spec["name"]] = value.reshape(shape)
        assert offset == len(blob), f"{name}: {len(blob) - offset} bytes left over"
    return weights


class Graph:
    """A tiny ONNX graph builder that tracks static spatial sizes (needed for the
    shape-dependent quirks of the recognition net)."""

    def __init__(self, name: str):
        self.name = name
        self.nodes, self.inits = [], []
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, hint="c") -> str:
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs, hint=None, **attrs) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    # --- TF-style layers, input and output NCHW ---------------------------------------
    def conv(self, x, hwio, bias=None, stride=1, same=True, group=1):
        """tf.conv2d (HWIO filters) or tf.depthwiseConv2d (HWC1 filters, group=C)."""
        if group == 1:
            w = np.transpose(hwio, (3, 2, 0, 1))
        else:
            w = np.transpose(hwio, (2, 3, 0, 1))
        inputs = [x, self.const(w.astype(np.float32), "w")]
        if bias is not None:
            inputs.append(self.const(bias.astype(np.float32), "b"))
        pad = {"auto_pad": "SAME_UPPER"} if same else {"auto_pad": "VALID"}
        return self.op("Conv", inputs, strides=[stride, stride], group=group, **pad)

    def separable(self, x, depthwise, pointwise, bias, stride=1, same=True):
        channels = depthwise.shape[2]
        x = self.conv(x, depthwise, stride=stride, same=same, group=channels)
        return self.conv(x, pointwise, bias)

    def add_channel(self, x, vec):
        return self.op("Add", [x, self.const(vec.reshape(1, -1, 1, 1).astype(np.float32))])

    def mul_channel(self, x, vec):
        return self.op("Mul", [x, self.const(vec.reshape(1, -1, 1, 1).astype(np.float32))])

    def relu(self, x):
        return self.op("Relu", [x])

    def relu6(self, x):
        return self.op("Clip", [x, self.const(np.float32(0)), self.const(np.float32(6))])

    def leaky(self, x):
        return self.op("LeakyRelu", [x], alpha=0.10000000149011612)

    def pad_end(self, x, h, w):
        """Zero rows/columns after the data (H, W) as tf's 'same' leaves for pools."""
        pads = np.array([0, 0, 0, 0, 0, 0, h, w], dtype=np.int64)
        return self.op("Pad", [x, self.const(pads)])

    def save(self, inputs, outputs, path: Path, doc: str):
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="greeter/tools/convert_faceapi.py",
            doc_string=doc,
        )
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(path))


def nchw_input(name, size, batch="N"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, 3, size, size])


def ssd_mobilenetv1(w: dict) -> Graph:
    g = Graph("ssd_mobilenetv1")

    def pointwise(x, prefix, idx, stride):
        x = g.conv(x, w[f"{prefix}/Conv2d_{idx}_pointwise/weights"], stride=stride)
        x = g.add_channel(x, w[f"{prefix}/Conv2d_{idx}_pointwise/convolution_bn_offset"])
        return g.relu6(x)

    x = pointwise("input", "MobilenetV1", 0, 2)
    conv11 = None
    for idx in range(1, 14):
        p = f"MobilenetV1/Conv2d_{idx}_depthwise"
        dw = w[f"{p}/depthwise_weights"]
        x = g.conv(x, dw, stride=2 if idx in (2, 4, 6, 12) else 1, group=dw.shape[2])
        x = g.op(
            "BatchNormalization",
            [x] + [g.const(w[f"{p}/BatchNorm/{k}"]) for k in ("gamma", "beta", "moving_mean", "moving_variance")],
            epsilon=SSD_BN_EPSILON,
        )
        x = g.relu6(x)
        x = pointwise(x, "MobilenetV1", idx, 1)
        if idx == 11:
            conv11 = x

    features = [conv11, x]
    y = x
    for idx in range(8):
        y = pointwise(y, "Prediction", idx, 2 if idx % 2 else 1)
        if idx % 2:
            features.append(y)

    box_parts, class_parts = [], []
    for idx, feat in enumerate(features):
        p = f"Prediction/BoxPredictor_{idx}"
        for kind, width, parts in (("BoxEncodingPredictor", 4, box_parts), ("ClassPredictor", 3, class_parts)):
            out = g.conv(feat, w[f"{p}/{kind}/weights"], w[f"{p}/{kind}/biases"])
            # tf reshapes NHWC to [batch, H*W*anchors, width]: go through NHWC for that order.
            out = g.op("Transpose", [out], perm=[0, 2, 3, 1])
            parts.append(g.op("Reshape", [out, g.const(np.array([1, -1, width], np.int64))]))
    enc = g.op("Concat", box_parts, axis=1)
    cls = g.op("Concat", class_parts, axis=1)

    # outputLayer.decodeBoxesLayer, same operation order as tfjs for bit-faithful results.
    anchors = w["Output/extra_dim"].reshape(-1, 4).astype(np.float32)
    a0, a1, a2, a3 = (anchors[:, i] for i in range(4))
    size0, size1 = a2 - a0, a3 - a1
    center0, center1 = a0 + size0 / np.float32(2), a1 + size1 / np.float32(2)

    def column(t, i):
        s = g.op("Slice", [t, g.const(np.array([i], np.int64)), g.const(np.array([i + 1], np.int64)),
                           g.const(np.array([2], np.int64))])
        return g.op("Reshape", [s, g.const(np.array([1, -1], np.int64))])

    v = [column(enc, i) for i in range(4)]
    f32 = np.float32

    def half_extent(vec, size):
        e = g.op("Exp", [g.op("Div", [vec, g.const(f32(5))])])
        return g.op("Div", [g.op("Mul", [e, g.const(size[None, :])]), g.const(f32(2))])

    def centre(vec, size, center):
        m = g.op("Mul", [g.op("Div", [vec, g.const(f32(10))]), g.const(size[None, :])])
        return g.op("Add", [m, g.const(center[None, :])])

    div0, add0 = half_extent(v[2], size0), centre(v[0], size0, center0)
    div1, add1 = half_extent(v[3], size1), centre(v[1], size1, center1)
    ymin, xmin = g.op("Sub", [add0, div0]), g.op("Sub", [add1, div1])
    ymax, xmax = g.op("Add", [add0, div0]), g.op("Add", [add1, div1])
    stacked = [g.op("Unsqueeze", [t, g.const(np.array([2], np.int64))]) for t in (xmin, ymin, xmax, ymax)]
    g.nodes.append(helper.make_node("Concat", stacked, ["boxes"], axis=2))
    face_logit = column(cls, 1)
    g.nodes.append(helper.make_node("Sigmoid", [face_logit], ["scores"]))
    n = anchors.shape[0]
    g.outputs = (
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, n, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, n])]
    )
    g.inputs = [nchw_input("input", 512, 1)]
    return g


def tiny_face_detector(w: dict, size: int = 416) -> Graph:
    g = Graph("tiny_face_detector")
    x = g.leaky(g.conv("input", w["conv0/filters"], w["conv0/bias"], same=False))
    spatial = size - 2
    for idx in range(1, 6):
        # tf.maxPool 2x2 'same' stride 2 pads odd sizes by one at the end; ONNX pool padding
        # is ignored by the max, as tf's is (conv outputs are leaky, so zeros would not do).
        pad = spatial % 2
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, pad, pad])
        spatial = (spatial + pad) // 2
        x = g.op("Pad", [x, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
        x = g.leaky(g.separable(x, w[f"conv{idx}/depthwise_filter"], w[f"conv{idx}/pointwise_filter"],
                                w[f"conv{idx}/bias"], same=False))
    x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1])
    out = g.conv(x, w["conv8/filters"], w["conv8/bias"], same=False)

    cells, anchors = spatial, len(TINY_ANCHORS)
    grid = g.op("Transpose", [out], perm=[0, 2, 3, 1])
    grid = g.op("Reshape", [grid, g.const(np.array([cells, cells, anchors, 5], np.int64))])

    def field(i):
        s = g.op("Slice", [grid, g.const(np.array([i], np.int64)), g.const(np.array([i + 1], np.int64)),
                           g.const(np.array([3], np.int64))])
        return g.op("Reshape", [s, g.const(np.array([cells, cells, anchors], np.int64))])

    f32 = np.float32
    cols = np.broadcast_to(np.arange(cells, dtype=f32)[None, :, None], (cells, cells, anchors))
    rows = np.broadcast_to(np.arange(cells, dtype=f32)[:, None, None], (cells, cells, anchors))
    ax = np.array([a[0] for a in TINY_ANCHORS], f32)[None, None, :]
    ay = np.array([a[1] for a in TINY_ANCHORS], f32)[None, None, :]
    n = g.const(f32(cells))
    ct_x = g.op("Div", [g.op("Add", [g.const(cols.copy()), g.op("Sigmoid", [field(0)])]), n])
    ct_y = g.op("Div", [g.op("Add", [g.const(rows.copy()), g.op("Sigmoid", [field(1)])]), n])
    bw = g.op("Div", [g.op("Mul", [g.op("Exp", [field(2)]), g.const(ax)]), n])
    bh = g.op("Div", [g.op("Mul", [g.op("Exp", [field(3)]), g.const(ay)]), n])
    x0 = g.op("Sub", [ct_x, g.op("Div", [bw, g.const(f32(2))])])
    y0 = g.op("Sub", [ct_y, g.op("Div", [bh, g.const(f32(2))])])
    x1, y1 = g.op("Add", [x0, bw]), g.op("Add", [y0, bh])
    count = cells * cells * anchors
    flat = [g.op("Reshape", [t, g.const(np.array([1, count, 1], np.int64))]) for t in (x0, y0, x1, y1)]
    g.nodes.append(helper.make_node("Concat", flat, ["boxes"], axis=2))
    conf = g.op("Reshape", [field(4), g.const(np.array([1, count], np.int64))])
    g.nodes.append(helper.make_node("Sigmoid", [conf], ["scores"]))
    g.inputs = [nchw_input("input", size, 1)]
    g.outputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, count, 4]),
                 helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, count])]
    return g


def landmarks68(w: dict) -> Graph:
    g = Graph("face_landmark_68")

    def separable(x, p, stride):
        return g.separable(x, w[f"{p}/depthwise_filter"], w[f"{p}/pointwise_filter"], w[f"{p}/bias"], stride)

    x = "input"
    for block in range(4):
        p = f"dense{block}"
        if block == 0:
            out1 = g.relu(g.conv(x, w[f"{p}/conv0/filters"], w[f"{p}/conv0/bias"], stride=2))
        else:
            out1 = g.relu(separable(x, f"{p}/conv0", 2))
        out2 = separable(out1, f"{p}/conv1", 1)
        in3 = g.relu(g.op("Add", [out1, out2]))
        out3 = separable(in3, f"{p}/conv2", 1)
        in4 = g.relu(g.op("Add", [out1, g.op("Add", [out2, out3])]))
        out4 = separable(in4, f"{p}/conv3", 1)
        x = g.relu(g.op("Add", [out1, g.op("Add", [out2, g.op("Add", [out3, out4])])]))
    x = g.op("AveragePool", [x], kernel_shape=[7, 7], strides=[2, 2])
    x = g.op("Flatten", [x])
    x = g.op("MatMul", [x, g.const(w["fc/weights"])])
    g.nodes.append(helper.make_node("Add", [x, g.const(w["fc/bias"])], ["landmarks"]))
    g.inputs = [nchw_input("input", 112)]
    g.outputs = [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["N", 136])]
    return g


def recognition(w: dict, size: int = 150) -> Graph:
    g = Graph("face_recognition_resnet")

    def conv_layer(x, p, stride, relu, same=True):
        x = g.conv(x, w[f"{p}/conv/filters"], w[f"{p}/conv/bias"], stride=stride, same=same)
        x = g.add_channel(g.mul_channel(x, w[f"{p}/scale/weights"]), w[f"{p}/scale/biases"])
        return g.relu(x) if relu else x

    def residual(x, p):
        out = conv_layer(conv_layer(x, f"{p}/conv1", 1, True), f"{p}/conv2", 1, False)
        return g.relu(g.op("Add", [out, x]))

    def residual_down(x, p, spatial, channels):
        out = conv_layer(x, f"{p}/conv1", 2, True, same=False)
        out = conv_layer(out, f"{p}/conv2", 1, False)
        conv_spatial = (spatial - 3) // 2 + 1
        pooled = g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
        pooled_spatial = spatial // 2
        if conv_spatial != pooled_spatial:
            # face-api appends one zero row and column to the conv branch when it is short.
            assert pooled_spatial - conv_spatial == 1
            out = g.pad_end(out, 1, 1)
        out_channels = w[f"{p}/conv2/conv/filters"].shape[3]
        if out_channels != channels:
            pads = np.array([0, 0, 0, 0, 0, out_channels - channels, 0, 0], np.int64)
            pooled = g.op("Pad", [pooled, g.const(pads)])
        return g.relu(g.op("Add", [pooled, out])), pooled_spatial, out_channels

    x = conv_layer("input", "conv32_down", 2, True, same=False)
    spatial = (size - 7) // 2 + 1
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    spatial = (spatial - 3) // 2 + 1
    channels = 32
    plan = ["conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2", "conv64_3",
            "conv128_down", "conv128_1", "conv128_2", "conv256_down", "conv256_1", "conv256_2",
            "conv256_down_out"]
    for p in plan:
        if p.endswith("down") or p.endswith("down_out"):
            x, spatial, channels = residual_down(x, p, spatial, channels)
        else:
            x = residual(x, p)
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
    g.nodes.append(helper.make_node("MatMul", [x, g.const(w["fc"])], ["descriptor"]))
    g.inputs = [nchw_input("input", size)]
    g.outputs = [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", 128])]
    return g


CONVERSIONS = {
    "ssd_mobilenetv1.onnx": ("ssd_mobilenetv1_model", ssd_mobilenetv1),
    "tiny_face_detector.onnx": ("tiny_face_detector_model", tiny_face_detector),
    "face_landmark_68.onnx": ("face_landmark_68_model", landmarks68),
    "face_recognition.onnx": ("face_recognition_model", recognition),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def main():
    package, models_dir = Path(sys.argv[1]), Path(sys.argv[2])
    manifest = tomllib.loads((models_dir / "models.toml").read_text())["models"]
    expected = {spec["file"]: spec["sha256"] for spec in manifest.values()}
    stale = [f for f in CONVERSIONS if sha256(models_dir / f) != expected.get(f)]
    for file in stale:
        weights_name, build = CONVERSIONS[file]
        g = build(load_weights(package / "model", weights_name))
        g.save(g.inputs, g.outputs, models_dir / file,
               f"converted from @vladmandic/face-api model/{weights_name} (MIT)")
        actual = sha256(models_dir / file)
        status = "ok" if actual == expected.get(file) else f"sha256 {actual} != manifest {expected.get(file)}"
        print(f"converted {models_dir / file}: {status}")
    bad = [f for f in CONVERSIONS if sha256(models_dir / f) != expected.get(f)]
    if bad:
        sys.exit(f"checksum mismatch for {bad}: a different onnx/numpy version? see tools/requirements.txt")


if __name__ == "__main__":
    main()

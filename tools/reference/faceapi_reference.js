// Runs face-api.js itself (tfjs wasm backend, offline) on the package's demo photos and writes
// the fixtures the Rust conversion tests compare against:
//   tests/fixtures/faceapi/reference.json   boxes, 68 landmarks, descriptors per face (SSD and tiny)
//   tests/fixtures/faceapi/crops/*.png       exact net-input crops (landmark crop, descriptor crop)
// and prints face-api's own timings, for the speed comparison in benches/.
//
// usage: node faceapi_reference.js FACEAPI_PACKAGE_DIR OUT_DIR
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const [packageDir, outDir] = process.argv.slice(2);
if (!packageDir || !outDir) {
  console.error('usage: node faceapi_reference.js FACEAPI_PACKAGE_DIR OUT_DIR');
  process.exit(2);
}
const CROP_FACES = 3; // how many faces keep exact input crops (the smallest, to keep fixtures small)
const TIMING_RUNS = 5;

const { encodePng, readImage, useWasm } = require('./common');

async function saveCrop(imageTensor, rect, file) {
  const [crop] = await faceapi.extractFaceTensors(imageTensor, [rect]);
  const [h, w] = crop.shape;
  fs.writeFileSync(file, encodePng(Array.from(crop.dataSync()), w, h));
  return crop;
}

const round = (v, d = 4) => Number(v.toFixed(d));
const boxOf = (b) => [b.x, b.y, b.width, b.height].map((v) => round(v));

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
async function timeIt(fn) {
  await fn(); // warm-up
  const times = [];
  for (let i = 0; i < TIMING_RUNS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

async function main() {
  await useWasm();
  await tf.ready();
  const modelDir = path.join(packageDir, 'model');
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
  await faceapi.nets.tinyFaceDetector.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);
  fs.mkdirSync(path.join(outDir, 'crops'), { recursive: true });

  const ssdOptions = new faceapi.SsdMobilenetv1Options();
  const tinyOptions = new faceapi.TinyFaceDetectorOptions();
  const images = fs.readdirSync(path.join(packageDir, 'demo')).filter((f) => /^sample\d+\.jpg$/.test(f)).sort();
  const reference = {
    generator: `face-api ${faceapi.version}, tfjs ${tf.version_core}, backend ${tf.getBackend()}, decoder @canvas/image`,
    images: [],
    crops: [],
  };
  const timings = [];
  const cropCandidates = [];

  for (const name of images) {
    const tensor = await readImage(path.join(packageDir, 'demo', name));
    const [height, width] = tensor.shape;
    const results = await faceapi.detectAllFaces(tensor, ssdOptions).withFaceLandmarks().withFaceDescriptors();
    const tiny = await faceapi.detectAllFaces(tensor, tinyOptions);
    reference.images.push({
      file: name,
      width,
      height,
      ssd: results.map((r) => ({
        score: round(r.detection.score, 6),
        box: boxOf(r.detection.box),
        landmarks: r.landmarks.positions.map((p) => [round(p.x), round(p.y)]),
        descriptor: Array.from(r.descriptor).map((v) => round(v, 7)),
      })),
      tiny: tiny.map((d) => ({ score: round(d.score, 6), box: boxOf(d.box) })),
    });
    results.forEach((r, i) => cropCandidates.push({ name, tensor, r, i, area: r.detection.box.area }));

    timings.push({
      image: name,
      ssd_ms: await timeIt(() => faceapi.detectAllFaces(tensor, ssdOptions)),
      tiny_ms: await timeIt(() => faceapi.detectAllFaces(tensor, tinyOptions)),
      full_ssd_ms: await timeIt(() => faceapi.detectAllFaces(tensor, ssdOptions).withFaceLandmarks().withFaceDescriptors()),
      faces: results.length,
    });
  }

  // Exact inputs for the identical-tensor tests: the crops each net saw, and its raw output.
  cropCandidates.sort((a, b) => a.area - b.area);
  for (const { name, tensor, r, i } of cropCandidates.slice(0, CROP_FACES)) {
    const stem = `${path.parse(name).name}_face${i}`;
    const landmarkCrop = await saveCrop(tensor, r.detection, path.join(outDir, 'crops', `${stem}_landmarks.png`));
    const raw = faceapi.nets.faceLandmark68Net.runNet(await faceapi.toNetInput(landmarkCrop));
    const alignedRect = r.landmarks.align(null, { useDlibAlignment: true });
    const descriptorCrop = await saveCrop(tensor, alignedRect, path.join(outDir, 'crops', `${stem}_descriptor.png`));
    const descriptor = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(descriptorCrop);
    reference.crops.push({
      landmark_crop: `crops/${stem}_landmarks.png`,
      landmark_net_output: Array.from(raw.dataSync()).map((v) => round(v, 7)),
      descriptor_crop: `crops/${stem}_descriptor.png`,
      descriptor: Array.from(descriptor).map((v) => round(v, 7)),
    });
    // Per-net timings on one face for the speed comparison.
    if (reference.crops.length === 1) {
      const lmInput = await faceapi.toNetInput(landmarkCrop);
      const descInput = await faceapi.toNetInput(descriptorCrop);
      console.log(JSON.stringify({
        per_net_ms: {
          landmarks: await timeIt(async () => tf.dispose(faceapi.nets.faceLandmark68Net.runNet(lmInput))),
          descriptor: await timeIt(async () => faceapi.nets.faceRecognitionNet.computeFaceDescriptor(descInput)),
        },
      }));
    }
  }
  fs.writeFileSync(path.join(outDir, 'reference.json'), `${JSON.stringify(reference)}\n`);
  console.log(JSON.stringify({ timings }, null, 1));
}

main().catch((e) => { console.error(e); process.exit(1); });

// The studio's vision models: MediaPipe's person segmentation and face mesh
// (the legacy "solutions", vendored under /static/vendor/ with their
// licences and loaded from OnAir itself), run on small copies of the camera
// frame at a lower rate than the camera; the render loop keeps using the
// last result (a mask, 468 landmarks) until the next one.
//
// Each solution lives in its own hidden same-origin iframe (segment.html,
// face.html): their wasm loaders set the same globals
// (`createMediapipeSolutionsWasm`, `Module`), so two in one page would
// clash; and the frames alone get the script policy the wasm needs
// (compiling wasm, embind's `new Function`: src/api/security.rs), not the
// studio. Inference runs on the CPU (XNNPACK, wasm
// SIMD): on machines without a GPU it is 5-10x faster than the solutions'
// WebGL path, and it leaves the GPU to the filter passes.

const VENDOR = '/static/vendor';

/** Loads `page` (its solution's script) in a hidden iframe; resolves to its window. */
function realm(page) {
  return new Promise((resolve, reject) => {
    const frame = document.createElement('iframe');
    frame.hidden = true;
    frame.setAttribute('aria-hidden', 'true');
    frame.tabIndex = -1;
    frame.title = 'vision model';
    frame.src = page;
    frame.onload = () => resolve(frame.contentWindow);
    frame.onerror = () => reject(new Error(`${page} did not load`));
    document.body.append(frame);
  });
}

/** Frees a result's copy of the input picture (an ImageBitmap) we do not use. */
function release(image) {
  if (image && typeof image.close === 'function') image.close();
}

/**
 * One model: `input` is the size frames are scaled to before inference
 * (the model's own input is smaller still; sending full frames costs 5-10x
 * more in the solution's image conversion).
 */
class Model {
  constructor(input) {
    this.input = document.createElement('canvas');
    [this.input.width, this.input.height] = input;
    this.ctx = this.input.getContext('2d', { alpha: false });
    this.solution = null;
    this.loading = null;
    this.failed = null;
    this.busy = false;
    this.runs = 0;
    this.ms = 0; // inference time of the last run
    this.result = null;
  }

  /** Starts loading (once); resolves when the model is ready. */
  load() {
    if (!this.loading) {
      this.loading = this.create().then(
        (s) => {
          this.solution = s;
          return s;
        },
        (err) => {
          this.failed = String(err && err.message ? err.message : err);
          console.warn('[onair] vision model unavailable:', err);
          throw err;
        },
      );
    }
    return this.loading;
  }

  get ready() {
    return !!this.solution;
  }

  /** The part of a `w` x `h` frame the model sees: [x, y, width, height]. */
  crop(w, h) {
    return [0, 0, w, h];
  }

  /** Runs the model on `video` unless a run is under way. */
  async run(video) {
    if (!this.solution || this.busy || !video.videoWidth) return false;
    this.busy = true;
    try {
      const t0 = performance.now();
      this.region = this.crop(video.videoWidth, video.videoHeight);
      this.frameSize = [video.videoWidth, video.videoHeight];
      const [x, y, w, h] = this.region;
      this.ctx.drawImage(video, x, y, w, h, 0, 0, this.input.width, this.input.height);
      await this.solution.send({ image: this.input });
      this.ms = performance.now() - t0;
      this.runs++;
      return true;
    } catch (err) {
      console.warn('[onair] vision model run failed:', err);
      return false;
    } finally {
      this.busy = false;
    }
  }
}

/** Person segmentation: `mask` is an ImageBitmap, the person's probability in red. */
export class Segmenter extends Model {
  constructor() {
    super([256, 144]);
    this.mask = null;
    this.version = 0;
  }

  async create() {
    const w = await realm('/static/filters/segment.html');
    if (!w.SelfieSegmentation) throw new Error('the segmentation script did not load');
    const s = new w.SelfieSegmentation({ locateFile: (f) => `${VENDOR}/selfie_segmentation/${f}` });
    // The landscape model (144x256 input), made for video calls: the cheaper one.
    s.setOptions({ modelSelection: 1, selfieMode: false, useCpuInference: true });
    s.onResults((r) => {
      release(r.image);
      if (this.mask && this.mask.close) this.mask.close();
      this.mask = r.segmentationMask;
      this.version++;
    });
    await s.initialize();
    return s;
  }
}

// Face mesh landmark indices (MediaPipe's 468-point canonical face).
export const FACE = {
  rightEye: [33, 133, 159, 145], // outer, inner, top, bottom (the person's right: the image's left)
  leftEye: [263, 362, 386, 374],
  forehead: 10,
  chin: 152,
  nose: 1,
  rightCheek: 50,
  leftCheek: 280,
  rightFace: 234,
  leftFace: 454,
  rightJaw: 172,
  leftJaw: 397,
  lipsOuter: [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146],
  lipsInner: [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95],
  rightBrow: [70, 63, 105, 66, 107, 55, 65, 52, 53, 46],
  leftBrow: [300, 293, 334, 296, 336, 285, 295, 282, 283, 276],
  rightLiner: [33, 246, 161, 160, 159, 158, 157, 173, 133],
  leftLiner: [263, 466, 388, 387, 386, 385, 384, 398, 362],
};

/**
 * Face landmarks: `points` is a Float32Array of x, y (0..1 of the frame)
 * per landmark, smoothed over runs (less jitter); null without a face.
 *
 * The model sees the middle square of the frame: its face detector (made
 * for faces near the camera) misses a face that is a sixth of a 16:9
 * frame's width, and finds it in the square, where it is over a quarter.
 */
export class FaceTracker extends Model {
  constructor() {
    super([384, 384]);
    this.points = null;
    this.version = 0;
    this.missed = 0;
    this.region = [0, 0, 1, 1];
  }

  crop(w, h) {
    const side = Math.min(w, h);
    return [(w - side) / 2, (h - side) / 2, side, side];
  }

  async create() {
    const w = await realm('/static/filters/face.html');
    if (!w.FaceMesh) throw new Error('the face mesh script did not load');
    const s = new w.FaceMesh({ locateFile: (f) => `${VENDOR}/face_mesh/${f}` });
    s.setOptions({ maxNumFaces: 1, refineLandmarks: false, selfieMode: false, useCpuInference: true, minDetectionConfidence: 0.5, minTrackingConfidence: 0.5 });
    s.onResults((r) => {
      release(r.image);
      this.take((r.multiFaceLandmarks || [])[0], this.region, this.frameSize);
    });
    await s.initialize();
    return s;
  }

  /** Takes the model's landmarks (fractions of `region` of a `size` frame). */
  take(face, region, size) {
    if (!face) {
      // A face lost for a few runs is gone (effects stop following nothing).
      if (++this.missed > 3 && this.points) {
        this.points = null;
        this.version++;
      }
      return;
    }
    this.missed = 0;
    const [x, y, w, h] = region;
    const next = new Float32Array(face.length * 2);
    face.forEach((p, i) => {
      next[i * 2] = (x + p.x * w) / size[0];
      next[i * 2 + 1] = (y + p.y * h) / size[1];
    });
    if (this.points && this.points.length === next.length) {
      // Light smoothing: most of the new position, some of the last.
      for (let i = 0; i < next.length; i++) next[i] = next[i] * 0.7 + this.points[i] * 0.3;
    }
    this.points = next;
    this.version++;
  }

  /** Landmark `i` as [x, y] (0..1 of the frame). */
  at(i) {
    return [this.points[i * 2], this.points[i * 2 + 1]];
  }
}

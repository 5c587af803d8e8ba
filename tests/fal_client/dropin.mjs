// Drives a local ComfyUI's fal drop-in with the official JS client (@fal-ai/client), as a team would after
// switching with `fal.config({ proxyUrl: { url, when: "always" } })`. Prints one JSON object on stdout
// that tests/host/test_fal_dropin.py asserts.
//
// Environment: FAL_CLIENT_DIR (folder whose node_modules holds @fal-ai/client), PROXY_URL
// (http://127.0.0.1:PORT/fooocus_inpaint/fal), FAL_LOCAL_KEY (the server's key), IMAGE_PATH, MASK_PATH (png).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(process.env.FAL_CLIENT_DIR.replace(/\/?$/, "/"));
const { fal, createFalClient } = require("@fal-ai/client");

const PROXY = process.env.PROXY_URL;
const KEY = process.env.FAL_LOCAL_KEY;
const ENDPOINT = "fal-ai/fooocus/inpaint";

// The one-line switch (plus the local key as the credentials).
fal.config({ credentials: KEY, proxyUrl: { url: PROXY, when: "always" } });

const clientPkg = require.resolve("@fal-ai/client").replace(/src[\\/]index\.js$/, "package.json");
const out = { clientVersion: JSON.parse(readFileSync(clientPkg, "utf8")).version };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errInfo = (e) => ({ name: e.name, status: e.status, body: e.body, message: e.message,
                          fieldErrors: e.name === "ValidationError" ? e.fieldErrors : undefined });
async function attempt(fn) {
  try { return { ok: true, value: await fn() }; } catch (e) { return { ok: false, error: errInfo(e) }; }
}
async function download(url) {
  if (url.startsWith("data:")) {
    const b64 = url.slice(url.indexOf(",") + 1);
    return { status: 200, size: Buffer.from(b64, "base64").length, dataUri: true };
  }
  const r = await fetch(url);
  const buf = Buffer.from(await r.arrayBuffer());
  return { status: r.status, size: buf.length, contentType: r.headers.get("content-type") };
}
const summarize = (u) => ({ status: u.status, queue_position: u.queue_position,
                            nlogs: Array.isArray(u.logs) ? u.logs.length : null,
                            lastLog: Array.isArray(u.logs) && u.logs.length ? u.logs[u.logs.length - 1].message : null });

const imageBytes = readFileSync(process.env.IMAGE_PATH);
const maskUri = "data:image/png;base64," + readFileSync(process.env.MASK_PATH).toString("base64");

// 1. storage upload (initiate through the proxy, then the PUT to upload_url), then the file URL is public
const uploadedUrl = await fal.storage.upload(new File([imageBytes], "my photo.png", { type: "image/png" }));
const fetched = await fetch(uploadedUrl);
out.upload = { url: uploadedUrl, status: fetched.status,
               same: Buffer.compare(Buffer.from(await fetched.arrayBuffer()), imageBytes) === 0 };

const t2i = (seed, extra = {}) => ({ inpaint_image_url: uploadedUrl, prompt: "a red barn", styles: [],
  aspect_ratio: "256x192", performance: "Lightning", output_format: "png", enable_safety_checker: false,
  seed, ...extra });

// 2. a queued request A, and while it runs fal.subscribe of an inpaint request B on the uploaded image
const A = await fal.queue.submit(ENDPOINT, { input: t2i(1, { num_images: 2 }) });
out.submitA = A;
const updates = [];
let t0 = Date.now();
const B = await fal.subscribe(ENDPOINT, {
  input: { inpaint_image_url: uploadedUrl, mask_image_url: maskUri, prompt: "a wooden cabin", styles: [],
           performance: "Lightning", output_format: "png", seed: 5 },
  logs: true, pollInterval: 200, onQueueUpdate: (u) => updates.push(summarize(u)),
});
out.subscribe = { ms: Date.now() - t0, requestId: B.requestId, data: B.data, updates,
                  download: await download(B.data.images[0].url) };

// 3. fal.queue.status + result of A (done by now)
out.statusA = await fal.queue.status(ENDPOINT, { requestId: A.request_id, logs: true });
out.statusA_nologs = await fal.queue.status(ENDPOINT, { requestId: A.request_id, logs: false });
const resA = await fal.queue.result(ENDPOINT, { requestId: A.request_id });
out.resultA = { requestId: resA.requestId, data: resA.data,
                downloads: await Promise.all(resA.data.images.map((i) => download(i.url))) };

// 4. cancel: D runs (big), E waits behind it; cancel E while queued, then D while running
const D = await fal.queue.submit(ENDPOINT, { input: t2i(2, { aspect_ratio: "1024x1024", num_images: 4 }) });
const E = await fal.queue.submit(ENDPOINT, { input: t2i(3) });
out.statusE_before = await fal.queue.status(ENDPOINT, { requestId: E.request_id });
out.cancelE = await attempt(() => fal.queue.cancel(ENDPOINT, { requestId: E.request_id }));
let sD;
for (let i = 0; i < 600; i++) {
  sD = await fal.queue.status(ENDPOINT, { requestId: D.request_id, logs: true });
  if (sD.status !== "IN_QUEUE") break;
  await sleep(50);
}
out.statusD_running = summarize(sD);
out.cancelD = await attempt(() => fal.queue.cancel(ENDPOINT, { requestId: D.request_id }));
for (let i = 0; i < 600; i++) {
  sD = await fal.queue.status(ENDPOINT, { requestId: D.request_id, logs: true });
  if (sD.status === "COMPLETED") break;
  await sleep(100);
}
out.statusD_after = sD;
out.statusE_after = await fal.queue.status(ENDPOINT, { requestId: E.request_id });
out.resultD = await attempt(() => fal.queue.result(ENDPOINT, { requestId: D.request_id }));
out.resultE = await attempt(() => fal.queue.result(ENDPOINT, { requestId: E.request_id }));
out.cancelA_done = await attempt(() => fal.queue.cancel(ENDPOINT, { requestId: A.request_id }));

// 5. fal.run (the synchronous fal.run host) with sync_mode: data URIs
const R = await attempt(() => fal.run(ENDPOINT, { input: t2i(4, { sync_mode: true }) }));
out.run = R.ok ? { ok: true, requestId: R.value.requestId, data: R.value.data,
                   download: await download(R.value.data.images[0].url) } : R;

// 6. wall time of one small request through the client (compared with /prompt by the Python test)
t0 = Date.now();
const T = await fal.subscribe(ENDPOINT, { input: t2i(11), pollInterval: 100 });
out.timing = { ms: Date.now() - t0, requestId: T.requestId, images: T.data.images.length };

// 7. bad requests through the client
const big = "x".repeat(9 * 1024 * 1024);
out.errors = {
  unknownEndpoint: await attempt(() => fal.queue.submit("fal-ai/flux/dev", { input: { prompt: "a cat" } })),
  invalidField: await attempt(() => fal.queue.submit(ENDPOINT, { input: t2i(1, { guidance_scale: 99 }) })),
  missingImage: await attempt(() => fal.queue.submit(ENDPOINT, { input: { prompt: "no image" } })),
  brokenImage: await attempt(() => fal.queue.submit(ENDPOINT, { input: t2i(1, {
    inpaint_image_url: "data:image/png;base64,AAAA" }) })),
  unsupported: await attempt(() => fal.queue.submit(ENDPOINT, { input: t2i(1, {
    performance: "Speed", refiner_model: "realisticVisionV60B1_v51VAE.safetensors" }) })),
  oversized: await attempt(() => fal.queue.submit(ENDPOINT, { input: t2i(1, { prompt: big }) })),
  unknownRequest: await attempt(() => fal.queue.status(ENDPOINT, { requestId: "00000000-0000-4000-8000-000000000000" })),
  wrongKey: await attempt(() => createFalClient({ credentials: "wrong-key", proxyUrl: { url: PROXY, when: "always" } })
    .queue.submit(ENDPOINT, { input: t2i(1) })),
  noKey: await attempt(() => createFalClient({ credentials: undefined, proxyUrl: { url: PROXY, when: "always" } })
    .queue.submit(ENDPOINT, { input: t2i(1) })),
};

process.stdout.write(JSON.stringify(out) + "\n");

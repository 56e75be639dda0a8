#!/usr/bin/env node
// Requests lost during zero-downtime switches, against a baseline measured in the same run.
// Starts a throw-away `slipway server` on free loopback ports, deploys fixtures/apps/node-ops,
// then: load alone (baseline), load while `ps:restart` runs RESTARTS times, load while PUSHES
// `git push` redeploys follow each other (each push returns before its old container drained,
// so the next one also meets a drain still running), and the time of `ps:scale web=1 -> 10`
// until every web container is healthy and routed.
// Usage: node bench/zero-downtime.mjs [restarts=5] [concurrency=8] [pushes=3]
// Needs Docker, the stack image and a seeded mirror (SLIPWAY_TEST_MIRROR or .cache/test-mirror).
import { app, cli, deploy, load as loadWith, push, routedCount, start, stop } from './harness.mjs';

const restarts = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 8);
const pushes = Number(process.argv[4] ?? 3);
const load = (until) => loadWith(until, concurrency);

const report = (label, r) =>
  console.log(`${label.padEnd(28)} sent ${String(r.sent).padStart(6)}  failed ${String(r.failed).padStart(4)}  p99 ${r.p99.toFixed(1)} ms${r.statuses.size ? `  (${[...r.statuses].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`);

try {
  await start();
  await deploy();
  // Warm up the app and the router's upstream connections first; that second is not counted.
  await load(new Promise((r) => setTimeout(r, 1000)));
  const baseline = await load(new Promise((r) => setTimeout(r, 3000)));
  report('baseline (3 s, no switch)', baseline);
  const t0 = Date.now();
  const during = await load((async () => {
    for (let i = 0; i < restarts; i++) await cli('ps:restart', app);
  })());
  report(`during ${restarts} x ps:restart`, during);
  console.log(`p99 ratio switching/baseline: ${(during.p99 / baseline.p99).toFixed(2)}   (${((Date.now() - t0) / 1000 / restarts).toFixed(1)} s per restart)`);
  const p0 = Date.now();
  const pushing = await load((async () => {
    for (let i = 0; i < pushes; i++) await push();
  })());
  report(`during ${pushes} x git push`, pushing);
  console.log(`p99 ratio pushing/baseline: ${(pushing.p99 / baseline.p99).toFixed(2)}   (${((Date.now() - p0) / 1000 / pushes).toFixed(1)} s per push)`);
  // Every push's old container is gone once its drain ended (the last one's too).
  await new Promise((r) => setTimeout(r, 5000));
  const left = (await cli('ps', app)).split('\n').filter((l) => l.includes('.old-'));
  console.log(`containers left aside after the pushes: ${left.length}${left.length ? ` (${left.join('; ')})` : ''}`);
  const s0 = Date.now();
  await cli('ps:scale', app, 'web=10');
  const scaleMs = Date.now() - s0;
  console.log(`ps:scale web=1 -> 10: ${(scaleMs / 1000).toFixed(1)} s until healthy and routed (${await routedCount()} upstreams routed)`);
} finally {
  await stop();
}

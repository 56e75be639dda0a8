// Idle memory of the platform's long-running processes (issue "Deploys in seconds", item 5):
// the daemon, the router (nginx master + workers) and the auth server, after a deploy and some
// traffic, against a bare Node process started the same way as the baseline. RSS counts shared
// pages once per process; PSS splits them, so PSS sums are what the machine really gives.
//
//     node bench/footprint.mjs [idle-seconds]
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { app, cli, deploy, home, load, serverPid, start, stop } from './harness.mjs';

const idleSeconds = Number(process.argv[2] ?? 20);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** VmRSS and Pss of one process, in KiB. */
function memory(pid) {
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  const pss = Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  return { rss, pss };
}

const children = (pid) =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(pid);
      } catch {
        return false;
      }
    })
    .map(Number);

const pidIn = (file) => Number(readFileSync(file, 'utf8').trim());
const sum = (pids) => pids.map(memory).reduce((a, m) => ({ rss: a.rss + m.rss, pss: a.pss + m.pss }), { rss: 0, pss: 0 });
const mib = (kb) => `${(kb / 1024).toFixed(1)} MiB`;

const bare = spawn(process.execPath, ['--enable-source-maps', '-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
try {
  console.log('-----> Starting a platform, deploying fixtures/apps/node-ops');
  await start();
  await deploy();
  const served = await load(sleep(5000));
  await cli('ps', app);
  console.log(`-----> ${served.sent} requests served (${served.failed} failed); idle for ${idleSeconds} s`);
  await sleep(idleSeconds * 1000);

  const nginx = pidIn(path.join(home, 'router', 'nginx.pid'));
  const rows = [
    ['daemon', sum([serverPid()])],
    ['router (nginx master + workers)', sum([nginx, ...children(nginx)])],
    ['auth server', sum([pidIn(path.join(home, 'run', 'auth.pid'))])],
    ['baseline: a bare node process', sum([bare.pid])],
  ];
  for (const [name, m] of rows) console.log(`${name.padEnd(34)} RSS ${mib(m.rss).padStart(10)}   PSS ${mib(m.pss).padStart(10)}`);
  const [daemon, router, auth, baseline] = rows.map(([, m]) => m);
  console.log(`daemon + router: RSS ${mib(daemon.rss + router.rss)} (goal under 150 MiB); with the auth server ${mib(daemon.rss + router.rss + auth.rss)}`);
  console.log(`daemon vs a bare node process: ${(daemon.rss / baseline.rss).toFixed(2)}x RSS; auth server ${(auth.rss / baseline.rss).toFixed(2)}x`);
} finally {
  bare.kill();
  await stop();
}

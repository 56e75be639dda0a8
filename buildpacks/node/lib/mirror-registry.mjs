// A read-only registry over the mirror's npm/ folder, on loopback, for `npm ci` inside a build
// that has no network. The folder is registry-shaped (<name>/-/<base>-<version>.tgz), so npm's
// tarball URLs map straight onto files. Lockfiles written without `resolved` URLs
// (omit-lockfile-registry-resolved) make npm ask for packuments, so those are synthesized from
// the tarballs present. Prints the port on stdout once listening.
// Node stdlib only: it runs on the Node.js the build just unpacked.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const root = path.resolve(process.argv[2] ?? '/mirror/npm');
const manifestFile = path.join(path.dirname(root), 'manifest.json');
const NAME = /^(@[A-Za-z0-9~-][A-Za-z0-9._~-]*\/)?[A-Za-z0-9~-][A-Za-z0-9._~-]*$/;
const VERSION = /^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

let manifest;
async function manifestEntries() {
  manifest ??= fs
    .readFile(manifestFile, 'utf8')
    .then((t) => JSON.parse(t).entries ?? {})
    .catch(() => ({}));
  return manifest;
}

async function integrityOf(name, version, file) {
  const known = (await manifestEntries())[`npm:${name}@${version}`]?.integrity;
  if (typeof known === 'string') return known;
  const hash = createHash('sha512');
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return `sha512-${hash.digest('base64')}`;
}

async function packument(name, base) {
  const dir = path.join(root, ...name.split('/'), '-');
  const files = await fs.readdir(dir).catch(() => []);
  const versions = {};
  const prefix = `${path.basename(name)}-`;
  for (const f of files) {
    if (!f.startsWith(prefix) || !f.endsWith('.tgz')) continue;
    const version = f.slice(prefix.length, -4);
    if (!VERSION.test(version)) continue;
    versions[version] = {
      name,
      version,
      dist: { tarball: `${base}${name}/-/${f}`, integrity: await integrityOf(name, version, path.join(dir, f)) },
    };
  }
  const list = Object.keys(versions);
  if (list.length === 0) return null;
  const latest = list.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1);
  return { name, 'dist-tags': { latest }, versions };
}

const server = http.createServer(async (req, res) => {
  const send = (status, body, type = 'application/json') => {
    res.writeHead(status, { 'content-type': type });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'read-only mirror' });
  let rel;
  try {
    // Decoded by hand, not through URL(): that would quietly resolve `..` and hide the attempt.
    rel = decodeURIComponent((req.url ?? '/').split('?')[0]);
  } catch {
    return send(400, { error: 'bad path' });
  }
  const parts = rel.split('/').filter((p) => p !== '');
  if (rel.includes('\0') || parts.includes('..') || parts.includes('.') || parts.length === 0) {
    return send(403, { error: 'refused path' });
  }
  const name = parts.join('/');
  if (!name.includes('/-/') && NAME.test(name)) {
    // The base is our own address, never the Host header a client sent.
    const doc = await packument(name, `http://127.0.0.1:${server.address().port}/`);
    if (doc) return send(200, doc);
  } else {
    const file = path.join(root, ...parts);
    const st = file.startsWith(root + path.sep) ? await fs.stat(file).catch(() => null) : null;
    if (st?.isFile()) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size });
      if (req.method === 'HEAD') return res.end();
      createReadStream(file).on('error', () => res.destroy()).pipe(res);
      return;
    }
  }
  process.stderr.write(`mirror: not found: ${rel}\n`);
  send(404, { error: 'not found in the mirror' });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});

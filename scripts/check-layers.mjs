#!/usr/bin/env node
// The dependency-direction check docs/architecture.md draws: each top-level folder may import
// only from the folders listed for it, so the layers stay as drawn. Reads imports as text
// (static `from '...'`, `import '...'` and dynamic `import('...')`), type-only imports included:
// a type is a dependency too. Prints one line per breach and exits 1 when there is any.
//   node scripts/check-layers.mjs [--root DIR]
import fs from 'node:fs';
import path from 'node:path';

const rootArg = process.argv.indexOf('--root');
const root = rootArg > 0 ? path.resolve(process.argv[rootArg + 1]) : path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

/** Folder -> folders it may import from (besides itself). */
const LAYERS = {
  core: [],
  router: ['core'],
  auth: ['core'],
  buildpacks: ['core'],
  runtime: ['core'],
  hooks: ['core', 'router', 'buildpacks', 'runtime'],
  services: ['core', 'router', 'buildpacks', 'runtime', 'hooks'],
  receiver: ['core', 'buildpacks', 'hooks', 'services'],
  web: ['core', 'router', 'buildpacks', 'runtime', 'hooks', 'services'],
  platform: ['core', 'auth', 'router', 'buildpacks', 'runtime', 'hooks', 'services', 'receiver', 'web'],
  cli: ['core', 'auth', 'router', 'buildpacks', 'runtime', 'hooks', 'services', 'receiver', 'web', 'platform'],
};

const SOURCE = /\.(ts|mts|mjs)$/;
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

function* sources(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(p);
    else if (SOURCE.test(entry.name) && !entry.name.endsWith('.test.ts')) yield p;
  }
}

const breaches = [];
for (const [layer, allowed] of Object.entries(LAYERS)) {
  if (!fs.existsSync(path.join(root, layer))) continue;
  for (const file of sources(path.join(root, layer))) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const target = path.relative(root, path.resolve(path.dirname(file), m[1]));
      const to = target.split(path.sep)[0];
      if (to === layer || to.startsWith('..') || to === 'node_modules') continue;
      if (!allowed.includes(to)) {
        const line = text.slice(0, m.index).split('\n').length;
        breaches.push(`${path.relative(root, file)}:${line}: ${layer}/ may not import ${to}/ (${m[1]}); see docs/architecture.md`);
      }
    }
  }
}
for (const b of breaches) console.error(b);
if (breaches.length > 0) process.exit(1);
console.log(`layers: ${Object.keys(LAYERS).length} folders import only downwards`);

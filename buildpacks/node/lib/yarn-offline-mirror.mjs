// Lays out yarn 1's "offline mirror" over the mirror's npm/ folder: one flat folder with a symlink
// per tarball, named as yarn looks it up (the file name of the lockfile's `resolved` URL, with the
// scope in front for scoped packages: `@scope-pkg-1.0.0.tgz`). yarn checks the lockfile's
// integrity on whatever it reads from there.
//   node yarn-offline-mirror.mjs <mirror>/npm <dest>
// Node stdlib only: it runs on the Node.js the build just unpacked.
import { promises as fs } from 'node:fs';
import path from 'node:path';

const [root, dest] = process.argv.slice(2).map((p) => path.resolve(p));
const list = async (dir) => fs.readdir(dir).catch(() => []);

await fs.mkdir(dest, { recursive: true });
let count = 0;
const linkTarballs = async (pkgDir, prefix) => {
  const dir = path.join(pkgDir, '-');
  for (const file of await list(dir)) {
    if (!file.endsWith('.tgz') || file.startsWith('.')) continue;
    await fs.symlink(path.join(dir, file), path.join(dest, prefix + file)).catch((err) => {
      if (err.code !== 'EEXIST') throw err;
    });
    count++;
  }
};
for (const entry of await list(root)) {
  if (entry.startsWith('.')) continue;
  if (entry.startsWith('@')) {
    for (const name of await list(path.join(root, entry))) await linkTarballs(path.join(root, entry, name), `${entry}-`);
  } else {
    await linkTarballs(path.join(root, entry), '');
  }
}
process.stdout.write(`       yarn offline mirror: ${count} tarball${count === 1 ? '' : 's'}\n`);

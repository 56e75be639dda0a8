import path from 'node:path';

/**
 * Pure checks for paths taken from an untrusted tree (a pushed commit). Everything is relative to
 * the extraction root and uses POSIX separators, as tar does.
 */

/** Returns the entry's path as components, or why it is refused. */
export function entryComponents(name: string): string[] | string {
  if (name.includes('\0')) return 'contains a NUL byte';
  if (name.startsWith('/')) return 'is an absolute path';
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return "has a '..' component";
  if (parts.length === 0) return 'has an empty path';
  return parts;
}

/** The first proper ancestor of `parts` that is a symlink, if any. */
export function symlinkAncestor(parts: string[], symlinks: ReadonlyMap<string, string>): string | undefined {
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    if (symlinks.has(prefix)) return prefix;
  }
  return undefined;
}

const MAX_HOPS = 40;

/**
 * Whether the symlink at `linkPath` (relative, already checked) with `target` points outside the
 * root once every symlink in the tree is followed the way the kernel would: a purely lexical check
 * is fooled by `b -> .` plus `a -> b/..`.
 */
export function symlinkEscapes(linkPath: string, target: string, symlinks: ReadonlyMap<string, string>): boolean {
  let hops = 0;
  const walk = (dir: string[], link: string): string[] | null => {
    if (link.startsWith('/')) return null;
    const stack = [...dir];
    for (const part of link.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (stack.length === 0) return null;
        stack.pop();
        continue;
      }
      stack.push(part);
      const next = symlinks.get(stack.join('/'));
      if (next !== undefined) {
        if (++hops > MAX_HOPS) return null;
        const resolved = walk(stack.slice(0, -1), next);
        if (resolved === null) return null;
        stack.splice(0, stack.length, ...resolved);
      }
    }
    return stack;
  };
  const parent = path.posix.dirname(linkPath);
  return walk(parent === '.' ? [] : parent.split('/'), target) === null;
}

import { SlipwayError } from './errors.js';

/** `512m`, `2g`, `1048576` (bytes) -> bytes, as Docker's `--memory` reads them. Pure. */
export function parseMemory(spec: string): number {
  const m = /^([0-9]+)([kmg]?)$/i.exec(spec.trim());
  if (!m) throw new SlipwayError('E_CONFIG', `invalid memory size ${JSON.stringify(spec)}: use a number with k, m or g`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
}

/** Bytes -> the largest exact unit, as `ps` shows a memory limit (`512m`, `2g`). Pure. */
export function formatMemory(bytes: number): string {
  for (const [unit, size] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

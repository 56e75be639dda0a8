import { parse } from 'yaml';
import { SlipwayError } from '../core/errors.js';

export interface ReleaseInfo {
  processTypes: Record<string, string>;
  configVars: Record<string, string>;
  /** Things the release asked for that Slipway does not do, to tell the user. */
  notes: string[];
}

/** Parses a buildpack's `bin/release` output (YAML). Pure. */
export function parseRelease(text: string, buildpack: string): ReleaseInfo {
  const info: ReleaseInfo = { processTypes: {}, configVars: {}, notes: [] };
  if (text.trim() === '') return info;
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new SlipwayError('E_BUILD', `buildpack ${buildpack}: bin/release printed invalid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  if (doc === null || doc === undefined) return info;
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new SlipwayError('E_BUILD', `buildpack ${buildpack}: bin/release must print a YAML mapping`);
  }
  const d = doc as Record<string, unknown>;
  info.processTypes = stringMap(d.default_process_types, 'default_process_types', buildpack);
  info.configVars = stringMap(d.config_vars, 'config_vars', buildpack);
  if (d.addons !== undefined && d.addons !== null) info.notes.push(`buildpack ${buildpack} asks for addons; Slipway has none and ignores them`);
  return info;
}

function stringMap(value: unknown, field: string, buildpack: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new SlipwayError('E_BUILD', `buildpack ${buildpack}: ${field} in bin/release output must be a mapping`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else throw new SlipwayError('E_BUILD', `buildpack ${buildpack}: ${field}.${k} in bin/release output must be a string`);
  }
  return out;
}

import { normalizeStamp, type LogLine } from '../log-lines.js';

/**
 * One line of a service's logs with `details`: `<stamp> <k=v,...> <text>`; the task id in the
 * details names the process (`<app>.<type>.<slot>`). Pure.
 */
export function parseServiceLine(raw: string, slots: ReadonlyMap<string, string>, fallback: string): LogLine {
  const m = /^(\S+) (\S*) ?(.*)$/.exec(raw);
  const time = m ? normalizeStamp(m[1]!) : null;
  if (!m || time === null) return { time: normalizeStamp(new Date().toISOString())!, source: `${fallback}.?`, text: raw };
  const task = /(?:^|,)com\.docker\.swarm\.task\.id=([^,]+)/.exec(m[2]!)?.[1];
  return { time, source: (task && slots.get(task)) ?? `${fallback}.?`, text: m[3]! };
}


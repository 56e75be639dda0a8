import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // The router answers "100 Continue" itself (Node does), so the upstream must not wait for it.
  'expect',
]);

const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port']);

export interface ClientInfo {
  remoteAddress: string | undefined;
  proto: 'http' | 'https';
  /** The port the client connected to. */
  port: number | undefined;
}

/** Names listed in Connection are hop-by-hop for this message too. */
function connectionTokens(values: string[]): Set<string> {
  const tokens = new Set<string>();
  for (const v of values) for (const t of v.split(',')) if (t.trim()) tokens.add(t.trim().toLowerCase());
  return tokens;
}

/** rawHeaders ([name, value, name, value...]) grouped by lower-case name, order kept. */
function group(rawHeaders: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const list = out.get(name);
    if (list) list.push(rawHeaders[i + 1]!);
    else out.set(name, [rawHeaders[i + 1]!]);
  }
  return out;
}

function endToEnd(rawHeaders: readonly string[], keep: ReadonlySet<string> = new Set()): Map<string, string[]> {
  const grouped = group(rawHeaders);
  const drop = connectionTokens(grouped.get('connection') ?? []);
  for (const name of [...grouped.keys()]) {
    if (keep.has(name)) continue;
    if (HOP_BY_HOP.has(name) || drop.has(name)) grouped.delete(name);
  }
  return grouped;
}

function toOutgoing(grouped: Map<string, string[]>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, values] of grouped) out[name] = values.length === 1 ? values[0]! : values;
  return out;
}

/**
 * Headers for the request to the upstream: end-to-end headers as the client sent them (repeats
 * kept), X-Forwarded-For appended to, the other X-Forwarded-* set by us since we are the edge.
 * A chunked body stays chunked; an upgrade keeps its Connection/Upgrade pair.
 */
export function upstreamRequestHeaders(rawHeaders: readonly string[], client: ClientInfo, upgrade = false): OutgoingHttpHeaders {
  const grouped = endToEnd(rawHeaders);
  const original = group(rawHeaders);
  for (const name of FORWARDED) if (name !== 'x-forwarded-for') grouped.delete(name);
  const chain = (original.get('x-forwarded-for') ?? []).join(', ');
  const remote = client.remoteAddress ?? 'unknown';
  grouped.set('x-forwarded-for', [chain ? `${chain}, ${remote}` : remote]);
  grouped.set('x-forwarded-proto', [client.proto]);
  const host = original.get('host')?.[0];
  if (host !== undefined) grouped.set('x-forwarded-host', [host]);
  if (client.port !== undefined) grouped.set('x-forwarded-port', [String(client.port)]);
  if (original.get('transfer-encoding')) grouped.set('transfer-encoding', ['chunked']);
  if (upgrade) {
    const protocols = original.get('upgrade');
    if (protocols) {
      grouped.set('connection', ['Upgrade']);
      grouped.set('upgrade', protocols);
    }
  }
  return toOutgoing(grouped);
}

/** Headers for the response to the client; Node re-frames the body (length or chunked) itself. */
export function clientResponseHeaders(rawHeaders: readonly string[]): OutgoingHttpHeaders {
  return toOutgoing(endToEnd(rawHeaders));
}

/**
 * What Node's strict parser lets through but a proxy must still refuse, because the upstream
 * might read it differently (request smuggling) or route it elsewhere: a second Host, a
 * Transfer-Encoding other than plain "chunked", and absolute-form targets whose authority could
 * disagree with Host. Returns why, or null when the request is fine.
 */
export function requestProblem(rawHeaders: readonly string[], url: string | undefined): string | null {
  const grouped = group(rawHeaders);
  if ((grouped.get('host')?.length ?? 0) > 1) return 'more than one Host header';
  const te = grouped.get('transfer-encoding');
  if (te && (te.length > 1 || te[0]!.trim().toLowerCase() !== 'chunked')) return 'unsupported Transfer-Encoding';
  if (te && grouped.has('content-length')) return 'both Transfer-Encoding and Content-Length';
  if ((grouped.get('content-length')?.length ?? 0) > 1) return 'more than one Content-Length';
  if (!url || !url.startsWith('/')) return 'request target must be a path';
  return null;
}

/** Whether the request carries a body (so it cannot be replayed once sent). */
export function hasBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

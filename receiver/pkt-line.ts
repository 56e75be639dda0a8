/**
 * Git's pkt-line framing (gitprotocol-common): four hex digits giving the length of the line
 * including themselves, then the payload; "0000" is a flush. Smart HTTP needs it for the
 * `# service=...` header that precedes a ref advertisement.
 */
export const FLUSH = '0000';

/** Largest payload one pkt-line may carry (65520 minus the 4-byte length). */
export const MAX_PKT_PAYLOAD = 65516;

export function pktLine(payload: string | Buffer): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  if (data.length > MAX_PKT_PAYLOAD) throw new RangeError(`pkt-line payload of ${data.length} bytes exceeds ${MAX_PKT_PAYLOAD}`);
  return Buffer.concat([Buffer.from((data.length + 4).toString(16).padStart(4, '0')), data]);
}

/** What a smart HTTP server sends before `git <service> --advertise-refs` output. */
export function serviceAnnouncement(service: 'git-upload-pack' | 'git-receive-pack'): Buffer {
  return Buffer.concat([pktLine(`# service=${service}\n`), Buffer.from(FLUSH)]);
}


/**
 * The capabilities a client asked for in the first pkt-line of a receive-pack request
 * (`<old> <new> <ref>\0<cap> <cap>...`), or [] when `head` does not hold a whole first line.
 */
export function requestedCapabilities(head: Buffer): string[] {
  if (head.length < 4) return [];
  const len = parseInt(head.subarray(0, 4).toString('latin1'), 16);
  if (!Number.isInteger(len) || len <= 4 || len > head.length) return [];
  const line = head.subarray(4, len).toString('latin1');
  const nul = line.indexOf('\0');
  return nul === -1 ? [] : line.slice(nul + 1).trim().split(' ').filter(Boolean);
}

/**
 * A fatal error on side-band channel 3: git prints it as `remote error: ...` and stops, which is
 * the only way to show the pusher our own words once a push request is under way.
 */
export function sidebandError(message: string): Buffer {
  return Buffer.concat([pktLine(Buffer.concat([Buffer.from([3]), Buffer.from(`${message}\n`)])), Buffer.from(FLUSH)]);
}

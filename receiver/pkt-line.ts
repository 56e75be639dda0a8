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


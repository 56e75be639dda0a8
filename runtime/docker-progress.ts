import type Dockerode from 'dockerode';
import { SlipwayError, type ErrorCode } from '../core/errors.js';

/** One entry of the JSON stream the engine sends for builds, imports and loads. */
export interface ProgressEntry {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
  aux?: { ID?: string };
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * Follows an engine progress stream to its END and resolves with every entry. The engine reports
 * a failed build as an entry in a stream that still ends normally, so an error entry is turned
 * into a typed error here; stopping early would leave the operation running unobserved.
 */
export function followToEnd(
  docker: Dockerode,
  stream: NodeJS.ReadableStream,
  onEntry: (entry: ProgressEntry) => void,
  code: ErrorCode = 'E_DOCKER',
): Promise<ProgressEntry[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, entries: ProgressEntry[]) => {
        if (err) return reject(new SlipwayError(code, `Docker Engine: ${err.message}`, { cause: err }));
        const failed = entries.find((e) => e.error !== undefined || e.errorDetail !== undefined);
        if (failed) {
          const message = failed.errorDetail?.message ?? failed.error ?? 'unknown error';
          return reject(new SlipwayError(code, `Docker Engine: ${message.trim()}`));
        }
        resolve(entries);
      },
      onEntry,
    );
  });
}

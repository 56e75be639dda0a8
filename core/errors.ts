/**
 * Typed errors. Every error a user can see carries a stable code and a one-line message that
 * says what went wrong and, where we know it, what to do next. The CLI prints
 * `slipway: <message>` and exits with `exitCode`.
 */
export type ErrorCode =
  | 'E_USAGE'
  | 'E_APP_NAME'
  | 'E_APP_NOT_FOUND'
  | 'E_APP_EXISTS'
  | 'E_UNKNOWN_COMMAND'
  | 'E_CONFIG'
  | 'E_STATE'
  | 'E_AUTH'
  | 'E_KEY'
  | 'E_TOKEN'
  | 'E_USER'
  | 'E_SSO_CONFIG'
  | 'E_SSO_TRANSACTION'
  | 'E_SSO_PROVIDER'
  | 'E_SSO_TOKEN'
  | 'E_SSO_USER'
  | 'E_SSO_LOCKED'
  | 'E_PROCFILE'
  | 'E_BUILD'
  | 'E_DETECT'
  | 'E_NODE_VERSION'
  | 'E_MIRROR'
  | 'E_ARCHIVE'
  | 'E_DOCKER'
  | 'E_STACK'
  | 'E_DEPLOY'
  | 'E_HEALTHCHECK'
  | 'E_RELEASE'
  | 'E_APP_JSON'
  | 'E_SCALE'
  | 'E_DAEMON'
  | 'E_ROUTES'
  | 'E_BUILDPACK'
  | 'E_TOO_LARGE'
  | 'E_BUILD_ID'
  | 'E_BUILD_NOT_FOUND'
  | 'E_UNSAFE_FILE'
  | 'E_INTERNAL';

export class SlipwayError extends Error {
  readonly code: ErrorCode;
  /** 1 for failures, 2 for wrong usage (see the contract). */
  readonly exitCode: 1 | 2;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; exitCode?: 1 | 2 }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SlipwayError';
    this.code = code;
    this.exitCode = options?.exitCode ?? (code === 'E_USAGE' ? 2 : 1);
  }
}

export const usageError = (message: string): SlipwayError => new SlipwayError('E_USAGE', message, { exitCode: 2 });

/** One line, no stack: what users see for any error, ours or not. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error';
}

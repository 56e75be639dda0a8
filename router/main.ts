import { parseArgs } from 'node:util';
import { oneLine, SlipwayError, usageError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { startRouter, type RouterOptions } from './server.js';

/**
 * The router as its own process, so apps keep answering while the daemon restarts:
 *   node dist/router/main.js --routes FILE [--listen 127.0.0.1] [--port 8080]
 *        [--https-port N --tls-cert FILE --tls-key FILE] [--log-level info]
 * SIGTERM/SIGINT close it gracefully.
 */
function optionsFrom(argv: string[]): Omit<RouterOptions, 'logger'> & { logLevel: string } {
  const { values } = parseArgs({
    args: argv,
    options: {
      routes: { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      'https-port': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    },
    strict: true,
  });
  if (!values.routes) throw usageError('--routes FILE is required');
  const port = (flag: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw usageError(`${flag} must be a port number, not ${v}`);
    return n;
  };
  const httpsPort = values['https-port'];
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if ((httpsPort ?? cert ?? key) !== undefined && !(httpsPort && cert && key)) {
    throw usageError('--https-port, --tls-cert and --tls-key go together');
  }
  return {
    routesFile: values.routes,
    listen: values.listen,
    port: port('--port', values.port),
    logLevel: values['log-level'],
    ...(httpsPort && cert && key ? { https: { port: port('--https-port', httpsPort), cert, key } } : {}),
  };
}

async function main(): Promise<void> {
  let opts: ReturnType<typeof optionsFrom>;
  try {
    opts = optionsFrom(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`slipway-router: ${oneLine(err)}\n`);
    process.exit(err instanceof SlipwayError ? err.exitCode : 2);
  }
  const { logLevel, ...rest } = opts;
  const logger = createLogger(logLevel);
  const router = await startRouter({ ...rest, logger });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'router stopping');
    router.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: oneLine(err) }, 'router close failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`slipway-router: ${oneLine(err)}\n`);
  process.exit(1);
});

/**
 * The pino logger. Every header and field that can hold a key is redacted, as a second line
 * of defence: the gateway's own log calls never pass headers or keys in the first place.
 */
import pino, { stdSerializers, type DestinationStream, type Logger } from 'pino';

const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  'apiKey',
  'api_key',
  'key.key',
  'lease.key',
  '*.authorization',
  '*.apiKey',
  '*.api_key',
  'config.openaiKeys',
  'config.groqKeys',
  'config.gatewayApiKeys',
  'config.metricsToken',
  'config.redisUrl',
  'config.redisPassword',
  // Node's HTTP parser errors carry the raw request bytes, Authorization header included.
  'err.rawPacket',
  'error.rawPacket',
  '*.rawPacket',
];

type SerializedError = ReturnType<typeof stdSerializers.err> & { rawPacket?: unknown; aggregateErrors?: SerializedError[] };

/**
 * pino's error serialiser copies every property of an error; a parser error's `rawPacket` is the
 * request as received, and serialised as a byte array it would slip past any path redaction.
 */
export function serializeError(error: Error): SerializedError {
  const serialized = stdSerializers.err(error) as SerializedError;
  // A value that is not an error comes back as it is: never mutate the caller's object.
  if (serialized !== (error as unknown) && serialized && typeof serialized === 'object') {
    delete serialized.rawPacket;
    for (const inner of serialized.aggregateErrors ?? []) if (inner && typeof inner === 'object') delete inner.rawPacket;
  }
  return serialized;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: { err: serializeError, error: serializeError },
    base: { service: 'gateway' },
  };
  return pino(options, destination ?? standardOutput());
}

/** What a write to a standard output that is gone fails with: a closed terminal, a closed pipe. */
const GONE = new Set(['EIO', 'EPIPE', 'EBADF']);

/**
 * Standard output, as pino's default destination, except when it goes away. pino silences itself
 * on EPIPE only; a terminal that was closed fails writes with EIO, which reached the process as
 * an uncaught error (it stopped serving) and, at exit, sent pino's flush into an endless retry
 * loop: the process never ended. The gateway goes on serving without logs, as under nohup.
 */
function standardOutput(): DestinationStream {
  // Asynchronous, as pino's own default for standard output: lines are written in batches.
  const stream = pino.destination({ dest: 1, sync: false });
  const silence = (error: NodeJS.ErrnoException): void => {
    if (error.code === undefined || !GONE.has(error.code)) return;
    const inert = () => undefined;
    Object.assign(stream, { write: () => true, flushSync: inert, end: inert, flush: inert });
  };
  stream.on('error', silence);
  return stream;
}

/**
 * The logger of the one line per request (request-log.ts). That line is built field by field from
 * values the gateway owns (ids, labels, numbers), never from headers or bodies, so the redaction
 * pass (half the cost of a line: on a cache hit, a tenth of the whole request) has nothing to do.
 */
export function requestLineLogger(log: Logger): Logger {
  return log.child({}, { redact: { paths: [], censor: '[redacted]' } });
}

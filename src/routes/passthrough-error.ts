/**
 * A provider's error answer on the passthrough (audio, images, files, …): read whole (bounded),
 * and passed on only when it is an error in OpenAI's shape, like on the cached routes
 * (upstream/error-body.ts); a load balancer's HTML page or an empty 5xx becomes the gateway's
 * own error with the same status.
 */
import type { FastifyReply } from 'fastify';
import { clientErrorBody, decodedErrorBody, unreadableUpstreamError } from '../upstream/error-body.js';

interface UpstreamAnswer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  stream: NodeJS.ReadableStream;
}

/** Past this, the body is not a JSON error: what was read is dropped, the rest left unread. */
const READ_LIMIT = 64 * 1024;

export async function relayUpstreamError(provider: string, res: UpstreamAnswer, reply: FastifyReply): Promise<void> {
  const raw = await readBounded(res.stream, READ_LIMIT);
  const encoding = res.headers['content-encoding'];
  const decoded = raw === undefined ? undefined : decodedErrorBody(raw, Array.isArray(encoding) ? encoding.join(',') : encoding);
  // Re-framed here: the provider's length and encoding no longer describe what is sent.
  for (const name of ['content-length', 'content-encoding', 'transfer-encoding', 'content-type']) reply.removeHeader(name);
  const body =
    decoded === undefined
      ? Buffer.from(JSON.stringify(unreadableUpstreamError(provider, res.statusCode).toBody()))
      : clientErrorBody(provider, res.statusCode, decoded);
  void reply.code(res.statusCode).type('application/json').send(body);
}

/** The whole body when it is at most `limit` bytes; undefined (the stream destroyed) when longer or broken. */
function readBounded(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (value: Buffer | undefined): void => {
      stream.removeListener('data', onData);
      resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += bytes.length;
      if (size > limit) {
        (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
        done(undefined);
        return;
      }
      chunks.push(bytes);
    };
    stream.on('data', onData);
    stream.once('end', () => done(Buffer.concat(chunks, size)));
    stream.once('error', () => done(undefined));
  });
}

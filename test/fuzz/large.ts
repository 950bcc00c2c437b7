/**
 * Family "large": bodies around the body limit (25 MiB by default): 26 MiB sent whole (with a
 * Content-Length, chunked, as an upload) must get 413, and a body just under the limit must be
 * answered as usual. The large buffers are made once per size and shared by every case.
 */
import type { FuzzCase, FuzzContext } from './cases.js';
import { requestHead } from './http-wire.js';
import { standardHeaders } from './requests.js';

export const MIB = 1024 * 1024;

const made = new Map<string, Buffer>();

function once(key: string, make: () => Buffer): Buffer {
  let buffer = made.get(key);
  if (!buffer) {
    buffer = make();
    made.set(key, buffer);
  }
  return buffer;
}

/** A chat body of exactly `size` bytes: the filler is a system message, the question short. */
function chatOfSize(size: number, tag: string): Buffer {
  const head = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"`;
  const tail = `"},{"role":"user","content":"large ${tag}"}]}`;
  const filler = size - Buffer.byteLength(head) - Buffer.byteLength(tail);
  return Buffer.concat([Buffer.from(head), Buffer.alloc(filler, 'a'), Buffer.from(tail)]);
}

function uploadOfSize(size: number, boundary: string): Buffer {
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  return Buffer.concat([Buffer.from(head), Buffer.alloc(size - head.length - tail.length, 7), Buffer.from(tail)]);
}

/** Chunk-encodes with 1 MiB chunks, built once (a view per chunk, no copy of the data). */
function chunkedWire(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += MIB) {
    const piece = body.subarray(offset, offset + MIB);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

export const LARGE_KINDS = [
  '26 MiB chat body',
  '26 MiB chat body, chunked',
  '26 MiB upload',
  'chat body just under the limit',
  'upload just under the limit',
  '26 MiB Content-Length, body never sent',
] as const;

export function largeCase(kind: number, ctx: FuzzContext, index: number, limit: number): FuzzCase {
  const label = LARGE_KINDS[kind % LARGE_KINDS.length] ?? LARGE_KINDS[0];
  const over = 26 * MIB;
  const under = limit - 64 * 1024;
  const chat = '/v1/chat/completions';
  const upload = '/v1/audio/transcriptions';
  const json = 'application/json';
  const boundary = 'fuzzlarge';
  const multipart = `multipart/form-data; boundary=${boundary}`;
  const one = (target: string, contentType: string, body: Buffer, extra: { chunked?: boolean; facts?: boolean } = {}) => {
    const headers = standardHeaders(ctx, contentType, extra.chunked ? undefined : body);
    if (extra.chunked) headers.push(['Transfer-Encoding', 'chunked']);
    return {
      head: requestHead('POST', target, headers),
      body: extra.chunked ? once(`chunked:${body.length}`, () => chunkedWire(body)) : body,
      ...(extra.chunked ? { plainBody: body } : {}),
      method: 'POST',
      target,
      ...(extra.facts ? { json: { model: 'gpt-4o-mini', messages: [] }, invalidJson: false } : {}),
    };
  };
  const base = { index, family: 'large' as const, label, freshConnection: true };
  switch (label) {
    case '26 MiB chat body':
      return {
        ...base,
        exchanges: [
          one(
            chat,
            json,
            once('chat-over', () => chatOfSize(over, 'over')),
            { facts: true },
          ),
        ],
      };
    case '26 MiB chat body, chunked':
      return {
        ...base,
        exchanges: [
          one(
            chat,
            json,
            once('chat-over', () => chatOfSize(over, 'over')),
            { chunked: true, facts: true },
          ),
        ],
      };
    case '26 MiB upload':
      return {
        ...base,
        exchanges: [
          one(
            upload,
            multipart,
            once('upload-over', () => uploadOfSize(over, boundary)),
          ),
        ],
      };
    case 'chat body just under the limit':
      return { ...base, exchanges: [one(chat, json, chatOfSize(under, `${ctx.seed}-${index}`), { facts: true })] };
    case 'upload just under the limit':
      return {
        ...base,
        exchanges: [
          one(
            upload,
            multipart,
            once('upload-under', () => uploadOfSize(under, boundary)),
          ),
        ],
      };
    default: {
      // The answer can come from the Content-Length alone; the client then hangs up.
      const headers = [...standardHeaders(ctx, json, undefined), ['Content-Length', String(over)] as [string, string]];
      return {
        ...base,
        exchanges: [
          {
            head: requestHead('POST', chat, headers),
            body: Buffer.from('{"model":"gpt-4o-mini","messages":['),
            method: 'POST',
            target: chat,
            halfCloseAfterMs: 1_000,
            mayClose: true,
          },
        ],
      };
    }
  }
}

/** Frees the shared large buffers (the script runs many cases; the test process lives on). */
export function releaseLargeBodies(): void {
  made.clear();
}

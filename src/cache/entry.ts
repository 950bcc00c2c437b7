/**
 * The stored value: a small header (what the gateway needs without touching the body: age, usage
 * for token/cost metrics, the ids an SSE usage chunk must repeat) and the body exactly as the
 * upstream sent it, so a hit in the form that filled it is served without re-parsing.
 *
 * Layout: [magic 1][flags 1][header length u32 BE][payload length u32 BE][payload], where the
 * payload is header JSON followed by the body, brotli-compressed as one stream when that pays:
 * the header (usage details, ids) repeats words of the body, so compressing both together saves
 * more than compressing the body alone (see docs/cache-density.md).
 */
import { promisify } from 'node:util';
import { brotliCompress, brotliCompressSync, brotliDecompress, brotliDecompressSync, constants } from 'node:zlib';
import type { ChunkIdentity, Usage } from '../openai/completion-types.js';

export type EntryForm = 'json' | 'sse';

export interface CacheEntry {
  /** Milliseconds since the epoch: Age and max-age are computed from it. */
  storedAt: number;
  /**
   * `json`: the response body bytes as the upstream sent them. `sse`: the upstream's SSE bytes
   * (`data: …\n\n` events) without the usage-only chunk and without the final `[DONE]`.
   */
  form: EntryForm;
  /** The endpoint that filled it: 'chat.completions', 'completions' or 'embeddings'. */
  endpoint: string;
  provider: string;
  model: string;
  usage?: Usage;
  /** Set for form `sse`. */
  chunkIdentity?: ChunkIdentity;
  body: Buffer;
}

/** Format 1 magic: a byte neither JSON ('{') nor SSE ('d') starts with, so foreign values are refused. */
const MAGIC_V1 = 0xca;
const FLAG_BROTLI = 0b0000_0001;
const KNOWN_FLAGS = FLAG_BROTLI;
const PREFIX_BYTES = 10;

/** Below this, compression saves too little to pay its CPU on every hit. */
const MIN_COMPRESS_BYTES = 256;
/** Keep the compressed body only when it is at most this fraction of the original. */
const MAX_KEPT_RATIO = 0.9;
/** The sync encoder leaves larger payloads uncompressed: brotli on megabytes would stall the event loop. */
export const SYNC_COMPRESS_MAX_BYTES = 256 * 1024;
/** Above this, quality 1 (much faster, slightly larger); see docs/cache-density.md. */
const HIGH_QUALITY_MAX_BYTES = 1024 * 1024;
/**
 * encodeEntryAsync compresses payloads up to this size inline: for a typical answer (~1 KB) the
 * thread-pool round trip costs several times the compression itself (measured: ~40 µs inline
 * against ~260 µs of CPU through the pool, see bench/README.md), and 4 KiB at quality 5 blocks the
 * event loop for well under a millisecond.
 */
const INLINE_COMPRESS_MAX_BYTES = 4 * 1024;

interface Header {
  v: 1;
  t: number;
  f: EntryForm;
  r: string;
  p: string;
  m: string;
  u?: Usage;
  c?: ChunkIdentity;
  /** Body length: detects truncation. */
  n: number;
}

const compressAsync = promisify(brotliCompress);
const decompressAsync = promisify(brotliDecompress);

export interface EncodeOptions {
  /** false stores the body as it is (measurements, or a deployment that prefers CPU to memory). */
  compress?: boolean;
}

/** Encodes with compression done inline; payloads over SYNC_COMPRESS_MAX_BYTES stay uncompressed. */
export function encodeEntry(entry: CacheEntry, options: EncodeOptions = {}): Buffer {
  const plain = plainPayload(entry);
  const size = plain.payload.byteLength;
  const compressed =
    options.compress !== false && size >= MIN_COMPRESS_BYTES && size <= SYNC_COMPRESS_MAX_BYTES
      ? brotliCompressSync(plain.payload, brotliOptions(size))
      : undefined;
  return frame(plain, compressed);
}

/** Encodes with compression on libuv's thread pool: for large bodies (embeddings) off the event loop. */
export async function encodeEntryAsync(entry: CacheEntry, options: EncodeOptions = {}): Promise<Buffer> {
  const plain = plainPayload(entry);
  const size = plain.payload.byteLength;
  let compressed: Buffer | undefined;
  if (options.compress !== false && size >= MIN_COMPRESS_BYTES) {
    compressed = size <= INLINE_COMPRESS_MAX_BYTES ? brotliCompressSync(plain.payload, brotliOptions(size)) : await compressAsync(plain.payload, brotliOptions(size));
  }
  return frame(plain, compressed);
}

/** The entry, or undefined for anything corrupt, truncated, foreign or of another format. Never throws. */
export function decodeEntry(data: Buffer): CacheEntry | undefined {
  const parsed = parseFrame(data);
  if (!parsed) return undefined;
  try {
    const payload = parsed.compressed ? brotliDecompressSync(parsed.payload, { maxOutputLength: parsed.plainLength }) : parsed.payload;
    return toEntry(payload, parsed);
  } catch {
    return undefined;
  }
}

/** Like decodeEntry, with decompression on the thread pool. Never rejects. */
export async function decodeEntryAsync(data: Buffer): Promise<CacheEntry | undefined> {
  const parsed = parseFrame(data);
  if (!parsed) return undefined;
  try {
    const payload = parsed.compressed ? await decompressAsync(parsed.payload, { maxOutputLength: parsed.plainLength }) : parsed.payload;
    return toEntry(payload, parsed);
  } catch {
    return undefined;
  }
}

function brotliOptions(size: number): { params: Record<number, number> } {
  return {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: size <= HIGH_QUALITY_MAX_BYTES ? 5 : 1,
      [constants.BROTLI_PARAM_SIZE_HINT]: size,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      // A window just larger than the payload compresses exactly as well as the default 4 MiB
      // one, without every encoder allocating (and page-faulting) megabytes: with this and inline
      // compression, the gateway's peak RSS under 50 concurrent misses fell from ~210 to ~125 MB.
      [constants.BROTLI_PARAM_LGWIN]: windowBits(size),
    },
  };
}

/** Brotli's window is 2^bits - 16 bytes; bits between 10 and 24. */
function windowBits(size: number): number {
  return Math.min(constants.BROTLI_MAX_WINDOW_BITS, Math.max(constants.BROTLI_MIN_WINDOW_BITS, Math.ceil(Math.log2(size + 16))));
}

interface PlainPayload {
  headerLength: number;
  payload: Buffer;
}

function plainPayload(entry: CacheEntry): PlainPayload {
  const header: Header = {
    v: 1,
    t: entry.storedAt,
    f: entry.form,
    r: entry.endpoint,
    p: entry.provider,
    m: entry.model,
    n: entry.body.byteLength,
  };
  if (entry.usage) header.u = entry.usage;
  if (entry.chunkIdentity) header.c = entry.chunkIdentity;
  const headerBytes = Buffer.from(JSON.stringify(header));
  return { headerLength: headerBytes.byteLength, payload: Buffer.concat([headerBytes, entry.body]) };
}

function frame(plain: PlainPayload, compressed: Buffer | undefined): Buffer {
  const useCompressed = compressed !== undefined && compressed.byteLength <= plain.payload.byteLength * MAX_KEPT_RATIO;
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES);
  prefix[0] = MAGIC_V1;
  prefix[1] = useCompressed ? FLAG_BROTLI : 0;
  prefix.writeUInt32BE(plain.headerLength, 2);
  prefix.writeUInt32BE(plain.payload.byteLength, 6);
  return Buffer.concat([prefix, useCompressed ? compressed : plain.payload]);
}

interface Frame {
  compressed: boolean;
  headerLength: number;
  /** Length of header + body uncompressed: bounds decompression, so hostile data cannot balloon. */
  plainLength: number;
  payload: Buffer;
}

function parseFrame(data: Buffer): Frame | undefined {
  if (data.byteLength < PREFIX_BYTES || data[0] !== MAGIC_V1) return undefined;
  const flags = data[1] ?? 0;
  if ((flags & ~KNOWN_FLAGS) !== 0) return undefined;
  const headerLength = data.readUInt32BE(2);
  const plainLength = data.readUInt32BE(6);
  const compressed = (flags & FLAG_BROTLI) !== 0;
  if (headerLength > plainLength || plainLength === 0) return undefined;
  const payload = data.subarray(PREFIX_BYTES);
  if (!compressed && payload.byteLength !== plainLength) return undefined;
  return { compressed, headerLength, plainLength, payload };
}

function toEntry(payload: Buffer, frame: Frame): CacheEntry | undefined {
  if (payload.byteLength !== frame.plainLength) return undefined;
  const header: unknown = JSON.parse(payload.toString('utf8', 0, frame.headerLength));
  if (!isHeader(header)) return undefined;
  const body = payload.subarray(frame.headerLength);
  if (body.byteLength !== header.n) return undefined;
  const entry: CacheEntry = { storedAt: header.t, form: header.f, endpoint: header.r, provider: header.p, model: header.m, body };
  if (header.u) entry.usage = header.u;
  if (header.c) entry.chunkIdentity = header.c;
  return entry;
}

function isHeader(value: unknown): value is Header {
  if (typeof value !== 'object' || value === null) return false;
  const h = value as Record<string, unknown>;
  return (
    h['v'] === 1 &&
    typeof h['t'] === 'number' &&
    (h['f'] === 'json' || h['f'] === 'sse') &&
    typeof h['r'] === 'string' &&
    typeof h['p'] === 'string' &&
    typeof h['m'] === 'string' &&
    typeof h['n'] === 'number' &&
    (h['u'] === undefined || (typeof h['u'] === 'object' && h['u'] !== null)) &&
    (h['c'] === undefined || isChunkIdentity(h['c']))
  );
}

function isChunkIdentity(value: unknown): value is ChunkIdentity {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Record<string, unknown>;
  return (
    typeof c['id'] === 'string' &&
    typeof c['object'] === 'string' &&
    typeof c['created'] === 'number' &&
    typeof c['model'] === 'string' &&
    (c['system_fingerprint'] === undefined || typeof c['system_fingerprint'] === 'string')
  );
}

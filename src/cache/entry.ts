/**
 * The stored value: a small header (what the gateway needs without touching the body: age, usage
 * for token/cost metrics, the ids an SSE usage chunk must repeat) and the body exactly as the
 * upstream sent it, so a hit in the form that filled it is served without re-parsing.
 *
 * Layout: [magic 1][flags 1][header length u32 BE][payload length u32 BE][payload], where the
 * payload is header JSON followed by the body, brotli-compressed as one stream when that pays:
 * the header (usage details, ids) repeats words of the body, so compressing both together saves
 * more than compressing the body alone (see docs/cache-density.md). The quality is the
 * encoder's choice and not recorded: any brotli stream decodes the same way, so entries written
 * at another quality (quality 5, before) read as they always did.
 */
import { promisify } from 'node:util';
import { brotliCompressSync, brotliDecompress, brotliDecompressSync, constants, createBrotliCompress } from 'node:zlib';
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
/**
 * Quality 1 for a JSON-filled entry: within 13% of quality 5's size for a chat answer (5% for
 * an embedding) at a third of its CPU (measured with bench/entry-encoding.ts, see
 * docs/cache-density.md).
 */
const JSON_QUALITY = 1;
/**
 * Quality 4 for a stream-filled entry: its per-token chunks are 98% repetition, which quality 1
 * codes 26% larger than quality 5; quality 4 stays within 15% of quality 5's size for 60% of
 * its CPU.
 */
const SSE_QUALITY = 4;
/** Above this, quality 1 whatever the form: quality 4 on a 1.3 MB stream is ~3 ms of CPU, quality 1 ~0.45. */
const HIGH_QUALITY_MAX_BYTES = 1024 * 1024;
/**
 * encodeEntryAsync compresses payloads up to this size inline and larger ones on libuv's thread
 * pool. Handing work to the pool costs the main thread ~20–35 µs (a zlib stream, the hand-off,
 * freeing the encoder) and the process ~50–100 µs more CPU than doing it inline; quality 1
 * compresses 8 KiB of JSON in about that time (~25–30 µs), so below this the pool saves the
 * event loop nothing (bench/entry-encoding.ts).
 */
export const INLINE_COMPRESS_MAX_BYTES = 8 * 1024;
/** Bodies up to this size are joined to their header before compression on the pool (compressOnPool). */
const JOIN_MAX_BYTES = 64 * 1024;

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

const decompressAsync = promisify(brotliDecompress);

export interface EncodeOptions {
  /** false stores the body as it is (measurements, or a deployment that prefers CPU to memory). */
  compress?: boolean;
}

/** Encodes with compression done inline; payloads over SYNC_COMPRESS_MAX_BYTES stay uncompressed. */
export function encodeEntry(entry: CacheEntry, options: EncodeOptions = {}): Buffer {
  const header = headerBytes(entry);
  const size = header.byteLength + entry.body.byteLength;
  const compressed =
    options.compress !== false && size >= MIN_COMPRESS_BYTES && size <= SYNC_COMPRESS_MAX_BYTES
      ? brotliCompressSync(Buffer.concat([header, entry.body], size), brotliOptions(entry.form, size))
      : undefined;
  return frame(header, entry.body, compressed);
}

/**
 * Encodes for the store, the event loop blocked at most for a small payload's compression:
 * larger ones are compressed on libuv's thread pool.
 */
export async function encodeEntryAsync(entry: CacheEntry, options: EncodeOptions = {}): Promise<Buffer> {
  const header = headerBytes(entry);
  const size = header.byteLength + entry.body.byteLength;
  let compressed: Buffer | undefined;
  if (options.compress !== false && size >= MIN_COMPRESS_BYTES) {
    compressed =
      size <= INLINE_COMPRESS_MAX_BYTES
        ? brotliCompressSync(Buffer.concat([header, entry.body], size), brotliOptions(entry.form, size))
        : await compressOnPool(header, entry.body, brotliOptions(entry.form, size));
  }
  return frame(header, entry.body, compressed);
}

/**
 * Header and body as one brotli stream on the thread pool. A large body is written after the
 * header rather than joined to it first: copying it costs the main thread more than a second
 * hand-off (~30 µs for a 330-token stream's 115 KB, ~400 µs for a 4k-token stream's 1.3 MB).
 * A small one is joined: the copy is a few µs, and quality 1 codes each write on its own, which
 * would cost a JSON entry ~1% of its size.
 */
function compressOnPool(header: Buffer, body: Buffer, options: ReturnType<typeof brotliOptions>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const encoder = createBrotliCompress(options);
    const chunks: Buffer[] = [];
    encoder.on('data', (chunk: Buffer) => chunks.push(chunk));
    encoder.once('error', reject);
    encoder.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    if (body.byteLength <= JOIN_MAX_BYTES) {
      encoder.end(Buffer.concat([header, body]));
    } else {
      encoder.write(header);
      encoder.end(body);
    }
  });
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

/** The quality for this entry's form and size; see JSON_QUALITY and SSE_QUALITY. */
export function compressionQuality(form: EntryForm, size: number): number {
  return form === 'sse' && size <= HIGH_QUALITY_MAX_BYTES ? SSE_QUALITY : JSON_QUALITY;
}

function brotliOptions(form: EntryForm, size: number): { params: Record<number, number> } {
  return {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: compressionQuality(form, size),
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

function headerBytes(entry: CacheEntry): Buffer {
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
  return Buffer.from(JSON.stringify(header));
}

/** The stored value, with the body copied once (a stream-filled body can be megabytes). */
function frame(header: Buffer, body: Buffer, compressed: Buffer | undefined): Buffer {
  const plainLength = header.byteLength + body.byteLength;
  const useCompressed = compressed !== undefined && compressed.byteLength <= plainLength * MAX_KEPT_RATIO;
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES);
  prefix[0] = MAGIC_V1;
  prefix[1] = useCompressed ? FLAG_BROTLI : 0;
  prefix.writeUInt32BE(header.byteLength, 2);
  prefix.writeUInt32BE(plainLength, 6);
  return useCompressed ? Buffer.concat([prefix, compressed]) : Buffer.concat([prefix, header, body], PREFIX_BYTES + plainLength);
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

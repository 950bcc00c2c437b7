/**
 * Reading and rewriting the `model` of a passthrough body without parsing more than needed:
 * JSON bodies and multipart/form-data uploads (audio), where the model is a plain form field.
 */
import { refuseDeepNesting } from '../pipeline/prepare.js';

// A form field named "model": its headers, the blank line, then the value on one line.
const MULTIPART_MODEL = /name="model"\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]+)\r\n/;

export type ModelInBody = { model: string | undefined } | { invalidJson: unknown };

export function modelInBody(body: Buffer, contentType: string): ModelInBody {
  if (contentType.includes('json')) {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { model?: unknown } | null;
      const model = parsed?.model;
      return { model: typeof model === 'string' && model !== '' ? model : undefined };
    } catch (cause) {
      return { invalidJson: cause };
    }
  }
  if (contentType.startsWith('multipart/form-data')) {
    // latin1 maps each byte to one char: binary parts (the audio) cannot break the match.
    return { model: MULTIPART_MODEL.exec(body.toString('latin1'))?.[1] };
  }
  return { model: undefined };
}

/**
 * The body with its model replaced (a forced `openai/`/`groq/` prefix removed), every other
 * byte as the client sent it where the format allows (multipart); JSON is re-serialised.
 */
export function withModel(body: Buffer, contentType: string, model: string): Buffer {
  if (contentType.includes('json')) {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return body;
    // JSON.parse builds any depth, JSON.stringify overflows the stack on it: the cached routes' 400.
    refuseDeepNesting(parsed);
    return Buffer.from(JSON.stringify({ ...parsed, model }), 'utf8');
  }
  if (contentType.startsWith('multipart/form-data')) {
    const text = body.toString('latin1');
    const match = MULTIPART_MODEL.exec(text);
    if (!match?.[1]) return body;
    const valueStart = match.index + match[0].length - match[1].length - 2;
    // The model was read as latin1, so it goes back as latin1: the same bytes, minus the prefix.
    return Buffer.concat([body.subarray(0, valueStart), Buffer.from(model, 'latin1'), body.subarray(valueStart + match[1].length)]);
  }
  return body;
}

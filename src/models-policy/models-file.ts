/**
 * Reads and strictly validates MODELS_FILE:
 * `{"aliases": {"fast": "groq/llama-3.1-8b-instant"}, "allow": ["gpt-4o*"], "fallbacks": {"gpt-4o-mini": ["groq/llama-3.3-70b-versatile"], "*": ["gpt-4o-mini"]}}`,
 * every field optional. A file that cannot be used is refused whole with one message naming the
 * file and what is wrong: at start-up the gateway stops with it, on a reload the old policy stays.
 */
import { readConfigFileText, readConfigFileTextSync } from '../reload/read-config-file.js';
import { ANY_MODEL, ModelPolicy } from './model-policy.js';

export class ModelsFileError extends Error {
  override readonly name = 'ModelsFileError';
}

const FIELDS = ['aliases', 'allow', 'fallbacks'] as const;
/** Far beyond any real id; a longer string is a mistake (a pasted document), not a model. */
const MAX_ID_LENGTH = 256;

export function readModelsFileSync(path: string): ModelPolicy {
  return parseModelsFile(path, readConfigFileTextSync('MODELS_FILE', path, ModelsFileError));
}

export async function readModelsFile(path: string): Promise<ModelPolicy> {
  return parseModelsFile(path, await readConfigFileText('MODELS_FILE', path, ModelsFileError));
}

export function parseModelsFile(path: string, text: string): ModelPolicy {
  const fail = (what: string): never => {
    throw new ModelsFileError(`MODELS_FILE ${path}: ${what}`);
  };
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    // The file holds model names only (no secret): the parser's position helps to fix it.
    fail(`not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(document)) return fail('must be a JSON object like {"aliases":{…},"allow":[…],"fallbacks":{…}}');
  for (const field of Object.keys(document)) {
    if (!(FIELDS as readonly string[]).includes(field)) fail(`unknown field ${quote(field)}; allowed: ${FIELDS.join(', ')}`);
  }
  const aliases = new Map<string, string>();
  if (document.aliases !== undefined) {
    if (!isObject(document.aliases)) fail('"aliases" must be an object of alias → model id');
    for (const [alias, target] of Object.entries(document.aliases as Record<string, unknown>)) {
      if (!isModelId(alias) || alias === ANY_MODEL) fail(`alias ${quote(alias)} is not a usable name (non-empty, no whitespace, not "*")`);
      if (!isModelId(target)) fail(`"aliases"."${alias}" must be a model id string (non-empty, no whitespace)`);
      aliases.set(alias, target as string);
    }
    for (const [alias, target] of aliases) {
      if (aliases.has(target)) fail(`"aliases"."${alias}" points to another alias (${quote(target)}); name the model itself`);
    }
  }
  let allow: string[] | undefined;
  if (document.allow !== undefined) {
    if (!Array.isArray(document.allow)) fail('"allow" must be an array of model ids or globs with *');
    allow = (document.allow as unknown[]).map((glob, index) => {
      if (!isModelId(glob)) fail(`"allow"[${index}] must be a model id or glob (non-empty, no whitespace)`);
      return glob as string;
    });
  }
  const fallbacks = new Map<string, string[]>();
  if (document.fallbacks !== undefined) {
    if (!isObject(document.fallbacks)) fail('"fallbacks" must be an object of model id (or "*") → array of model ids');
    for (const [model, list] of Object.entries(document.fallbacks as Record<string, unknown>)) {
      if (!isModelId(model)) fail(`fallbacks of ${quote(model)}: not a usable model id`);
      if (!Array.isArray(list)) fail(`"fallbacks"."${model}" must be an array of model ids`);
      const ids = (list as unknown[]).map((id, index) => {
        if (!isModelId(id) || id === ANY_MODEL) fail(`"fallbacks"."${model}"[${index}] must be a model id (non-empty, no whitespace, not "*")`);
        if (id === model) fail(`"fallbacks"."${model}" lists the model itself`);
        return id as string;
      });
      fallbacks.set(model, ids);
    }
  }
  return new ModelPolicy({ aliases, allow, fallbacks });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isModelId(value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= MAX_ID_LENGTH && !/\s/.test(value);
}

/** A name from the file, quoted and bounded for the one error line. */
function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

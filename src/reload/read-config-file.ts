/**
 * The text of a file the gateway reads at start-up and again while it runs (KEYS_FILE,
 * MODELS_FILE, LIMITS_FILE). One that cannot be read throws the file's own error class, naming
 * the variable, the path and the fs code (ENOENT, EACCES) and never any content, so the message
 * is safe both as the one start-up error line and in a reload's refusal.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

export type FileErrorClass = new (message: string, options?: ErrorOptions) => Error;

export async function readConfigFileText(variable: string, path: string, errorClass: FileErrorClass): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw unreadable(variable, path, errorClass, error);
  }
}

/** For a file that must be in force before anything else starts (MODELS_FILE). */
export function readConfigFileTextSync(variable: string, path: string, errorClass: FileErrorClass): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw unreadable(variable, path, errorClass, error);
  }
}

function unreadable(variable: string, path: string, errorClass: FileErrorClass, error: unknown): Error {
  const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : 'unknown error';
  return new errorClass(`${variable} ${path}: cannot be read (${code})`, { cause: error });
}

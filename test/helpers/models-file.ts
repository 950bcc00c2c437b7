/**
 * MODELS_FILE for tests: written to a scratch directory of its own (removed after the test
 * file), rewritten in place or by rename as an operator's editor would.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

export interface ModelsFile {
  path: string;
  /** Replaces the file's content (JSON-encoded unless a string) by writing a new file and renaming it over. */
  replace(content: unknown): Promise<void>;
}

export async function writeModelsFile(content: unknown): Promise<ModelsFile> {
  const dir = await mkdtemp(join(tmpdir(), 'gateway-models-'));
  directories.push(dir);
  const path = join(dir, 'models.json');
  const text = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));
  await writeFile(path, text(content));
  let version = 0;
  return {
    path,
    async replace(next) {
      const staged = join(dir, `models.json.${++version}.tmp`);
      await writeFile(staged, text(next));
      await rename(staged, path);
    },
  };
}

/**
 * An error named by its class and code only ("Error ENOENT", "TypeError"), for log lines about a
 * re-read file: its message is not needed and could quote the file, which may hold keys.
 */
export function errorClassAndCode(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown error';
  const code = 'code' in error && typeof error.code === 'string' ? ` ${error.code}` : '';
  return `${error.name}${code}`;
}

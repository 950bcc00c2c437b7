/**
 * The `allow` list's globs: `*` stands for any run of characters (slashes included, so
 * `meta-llama/*` and `openai/gpt-oss-*` work as written); every other character is literal.
 * Matched against whole ids, case-sensitively, as the providers compare ids.
 */

/** One regular expression for a whole list of globs: one test per request, however long the list. */
export function globsToRegExp(globs: readonly string[]): RegExp {
  const alternatives = globs.map((glob) => glob.split('*').map(escapeRegExp).join('.*'));
  return new RegExp(`^(?:${alternatives.join('|')})$`, 's');
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.|?+()[\]{}]/g, '\\$&');
}

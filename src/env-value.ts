/** Reading one environment variable the way every setting is read. */

export type Env = Readonly<Record<string, string | undefined>>;

/** The variable's value trimmed; undefined when it is unset or blank (blank means "use the default"). */
export function envValue(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

// Rate-limit durations as OpenAI and Groq write them: Go-style sequences of number+unit,
// e.g. `6m0s`, `20ms`, `1m30.5s`, `2m59.56s`, `2h1m`, `7.66s`.
const UNIT_MS: Readonly<Record<string, number>> = {
  h: 3_600_000,
  m: 60_000,
  s: 1_000,
  ms: 1,
  us: 0.001,
  µs: 0.001,
  ns: 0.000_001,
};

// Longest units first in the alternation so `ms` is not read as `m` followed by `s`.
const PART = /(\d+(?:\.\d+)?|\.\d+)(ms|us|µs|ns|h|m|s)/y;

/** A Go-style duration in milliseconds, or undefined when the text is not one. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < trimmed.length) {
    const start = PART.lastIndex;
    const match = PART.exec(trimmed);
    if (match === null || match.index !== start) return undefined;
    const [, amount = '', unit = ''] = match;
    const unitMs = UNIT_MS[unit];
    if (unitMs === undefined) return undefined;
    total += Number(amount) * unitMs;
  }
  // Round to the microsecond: `59.56 * 1000` is 59560.00000000001 in binary floating point.
  return Number.isFinite(total) ? Math.round(total * 1000) / 1000 : undefined;
}

/** The same, also accepting a bare number of seconds (`"7"`, `"0.5"`). */
export function parseSecondsOrDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  return parseDuration(trimmed);
}

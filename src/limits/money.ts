/**
 * Spend is counted in whole nano-dollars, not in floating-point dollars: additions of integers are
 * exact and atomic in Redis (HINCRBY), so a budget of $0.03 is reached by three $0.01 calls
 * exactly, never by a rounding error a call early or late. A nano-dollar is far below any price
 * (a token of the cheapest model costs tens of them), and 2^53 of them is $9 million.
 */

const NANOS_PER_USD = 1e9;

export function toNanoUsd(usd: number): number {
  return Math.round(usd * NANOS_PER_USD);
}

export function fromNanoUsd(nanos: number): number {
  return nanos / NANOS_PER_USD;
}

/** `$10.00`, `$0.03`, `$0.0042`: cents for most amounts, more digits only below a cent. */
export function formatUsd(usd: number): string {
  if (usd === 0 || Math.abs(usd) >= 0.01) return `$${usd.toFixed(2)}`;
  return `$${Number(usd.toPrecision(2))}`;
}

/** The upstream providers the gateway sends requests to, each with its own key pool. */
export type ProviderName = 'openai' | 'groq';

export const PROVIDER_NAMES: readonly ProviderName[] = ['openai', 'groq'];

export function isProviderName(value: string): value is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(value);
}

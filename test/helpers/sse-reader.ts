/**
 * Reads an SSE response event by event with the time each arrived, for tests about ordering
 * (first chunk before the upstream finished) and completeness ([DONE] received).
 */
export interface TimedEvent {
  data: string;
  at: number;
}

export async function readSse(response: Response, onEvent?: (event: TimedEvent) => void): Promise<TimedEvent[]> {
  if (!response.body) throw new Error('response has no body');
  const events: TimedEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data === '') continue;
      const event = { data, at: performance.now() };
      events.push(event);
      onEvent?.(event);
    }
  }
  return events;
}

/** The content a chat stream carried, assembled from its deltas. */
export function chatContentOf(events: TimedEvent[]): string {
  let text = '';
  for (const event of events) {
    if (event.data === '[DONE]') continue;
    const chunk = JSON.parse(event.data) as { choices?: Array<{ delta?: { content?: string | null } }> };
    text += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return text;
}

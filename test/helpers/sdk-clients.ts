/**
 * The real client SDKs pointed at a running gateway, the way users configure them: the openai
 * SDK at `<gateway>/v1`, the groq-sdk at the gateway's root (it adds Groq's `/openai/v1`).
 * Retries are off so a test sees exactly the answer the gateway gave.
 */
import Groq from 'groq-sdk';
import OpenAI from 'openai';
import { TEST_CLIENT_KEY, type RunningGateway } from './gateway.js';

export function openaiClient(gateway: Pick<RunningGateway, 'baseURL'>, apiKey = TEST_CLIENT_KEY): OpenAI {
  return new OpenAI({ apiKey, baseURL: gateway.baseURL, maxRetries: 0, timeout: 15_000 });
}

export function groqClient(gateway: Pick<RunningGateway, 'url'>, apiKey = TEST_CLIENT_KEY): Groq {
  return new Groq({ apiKey, baseURL: gateway.url, maxRetries: 0, timeout: 15_000 });
}

/** The slice of a chat completion chunk a reader needs (the openai SDK's ChatCompletionChunk fits). */
interface ContentChunk {
  choices: Array<{ delta: { content?: string | null } }>;
}

/**
 * Reads an SDK chat stream to its end, or to the error it raised: the content it delivered, and
 * the error (undefined when the stream ended normally), so a test can check both for a broken stream.
 */
export async function readChatStream(stream: AsyncIterable<ContentChunk>): Promise<{ text: string; failure: unknown }> {
  let text = '';
  let failure: unknown;
  try {
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  } catch (error) {
    failure = error;
  }
  return { text, failure };
}

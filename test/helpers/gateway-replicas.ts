/**
 * Several gateway replicas on one shared Redis (of any kind), as operators run them behind Nginx:
 * each a real buildServer listening on its own loopback port, against one fake upstream; and
 * steady traffic over them while a test breaks the Redis underneath.
 */
import { chat, chatBody, type GatewayResponse } from './cache-e2e.js';
import type { ProviderDouble, RunningGateway } from './gateway.js';
import { startGateway } from './gateway.js';
import { scrape } from './metrics-scrape.js';
import { setTimeout as sleep } from 'node:timers/promises';

export async function startReplicas(fake: ProviderDouble, env: Record<string, string>, count = 2): Promise<RunningGateway[]> {
  const replicas: RunningGateway[] = [];
  for (let i = 0; i < count; i++) replicas.push(await startGateway(fake, { LOG_LEVEL: 'warn', ...env }));
  // The model lists are fetched now, so the first timed request is not the first routed one.
  await Promise.all(replicas.map((replica) => fetch(`${replica.url}/v1/models`).then((response) => response.text())));
  await untilReplicasMeet(replicas, count);
  return replicas;
}

/**
 * Waits until every replica counts at least `count` replicas on its Redis (gateway_replicas):
 * a replica that started first learns of the later ones at its next beat, and until then takes
 * no lease for its misses.
 */
export async function untilReplicasMeet(replicas: ReadonlyArray<{ url: string }>, count: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const replica of replicas) {
    for (;;) {
      const seen = (await scrape(replica.url)).select('gateway_replicas')[0]?.value ?? 0;
      if (seen >= count) break;
      if (Date.now() > deadline) throw new Error(`replica ${replica.url} sees ${seen} replicas, not ${count}`);
      await sleep(50);
    }
  }
}

export interface TrafficSample {
  prompt: string;
  replica: number;
  status: number;
  xCache: string | null;
  at: number;
}

/**
 * Requests round-robin over the replicas and prompts, a few at a time, until stop() is called;
 * every answer is kept. A request that fails at the socket is recorded with status 0.
 */
export function steadyTraffic(replicas: RunningGateway[], prompts: string[], concurrency = 4): { samples: TrafficSample[]; stop(): Promise<void> } {
  const samples: TrafficSample[] = [];
  let running = true;
  let turn = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      const index = turn++;
      const prompt = prompts[index % prompts.length]!;
      const replica = index % replicas.length;
      let answer: GatewayResponse | undefined;
      try {
        answer = await chat(replicas[replica]!, chatBody(prompt));
      } catch {
        answer = undefined;
      }
      samples.push({ prompt, replica, status: answer?.status ?? 0, xCache: answer?.xCache ?? null, at: Date.now() });
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    samples,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

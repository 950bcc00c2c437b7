/**
 * Every other /v1/* route (audio, images, moderations, files, …) goes to a provider unchanged
 * through @fastify/http-proxy. The body is buffered (bounded by the body limit) so the
 * provider can be chosen from its `model`, JSON or multipart alike; the client's key is
 * replaced by a provider key.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import httpProxy, { type FastifyHttpProxyOptions } from '@fastify/http-proxy';
import type { Config } from '../config.js';
import { errors } from '../errors.js';
import { cooldownFromResponse } from '../keys/cooldown.js';
import { withoutHopByHop } from '../http/hop-by-hop.js';
import { isUnavailable, type KeyLease } from '../keys/pool.js';
import type { KeyPools } from '../keys/pools.js';
import type { Provider } from '../providers/index.js';
import type { ProviderName } from '../providers/provider-name.js';
import type { ModelRouter } from '../routing.js';
import { modelInBody, withModel } from './passthrough-body.js';
import { relayUpstreamError } from './passthrough-error.js';
import { passthroughRetryDelay } from './passthrough-retry.js';
import { isKeyRefusal, refusalError } from '../upstream/provider-refusal.js';

interface PassthroughTarget {
  provider: Provider;
  lease: KeyLease;
  /** The body to forward (the client's bytes; a forced provider prefix removed from its model). */
  body: Buffer | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    passthrough?: PassthroughTarget;
  }
}

/** Request headers that must not reach the provider: the client's credentials and identity. */
const DROPPED_REQUEST_HEADERS = new Set(['authorization', 'cookie', 'host', 'x-forwarded-for', 'x-real-ip', 'forwarded']);

export interface PassthroughDeps {
  config: Config;
  providers: Readonly<Record<ProviderName, Provider>>;
  pools: KeyPools;
  router: ModelRouter;
}

export async function registerPassthrough(app: FastifyInstance, deps: PassthroughDeps): Promise<void> {
  await app.register(async (scope) => {
    // Buffer every body here (JSON included, unparsed) so it can be inspected and forwarded as is.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    for (const prefix of ['/v1', '/openai/v1']) {
      const options = {
        upstream: '',
        prefix,
        // One log line per request is request-log.ts's job, not reply-from's two extra ones.
        disableRequestLogging: true,
        // Our own hook replaces the plugin's streaming body parsers (see above).
        preValidation: async (request: FastifyRequest, reply: FastifyReply) => {
          request.gw.endpoint = 'passthrough';
          request.passthrough = await choose(request, prefix, deps);
          request.gw.provider = request.passthrough.provider.name;
          void reply.header('x-gateway-provider', request.passthrough.provider.name);
        },
        replyOptions: {
          getUpstream: (request: FastifyRequest) => targetOf(request).provider.origin,
          rewriteRequestHeaders: (request: FastifyRequest, headers: Record<string, string | string[] | undefined>) => {
            // The provider key first: whatever the client sent after it cannot push it out of a
            // server's header count limit.
            const out: Record<string, string | string[] | undefined> = { authorization: `Bearer ${targetOf(request).lease.key}` };
            // reply-from already removed `connection` from `headers`: the options it listed come from the original.
            for (const [name, value] of Object.entries(withoutHopByHop(headers, request.headers.connection))) {
              if (!DROPPED_REQUEST_HEADERS.has(name) && !name.startsWith('x-openwebui-')) out[name] = value;
            }
            return out;
          },
          rewriteHeaders: (headers: Record<string, string | string[] | undefined>) => {
            // The client's connection is the gateway's business, not the provider's.
            const { 'x-request-id': upstreamId, ...rest } = withoutHopByHop(headers);
            return upstreamId === undefined ? rest : { ...rest, 'x-upstream-request-id': upstreamId };
          },
          onResponse: (request: FastifyRequest, reply: FastifyReply, res: { statusCode: number; headers: Record<string, string | string[] | undefined>; stream: NodeJS.ReadableStream }) => {
            const target = targetOf(request);
            const pool = deps.pools[target.provider.name];
            const cooldownMs = res.statusCode === 429 ? cooldownFromResponse(res.headers, undefined, Date.now()) : undefined;
            if (res.statusCode === 429) pool.rateLimited(target.lease, cooldownMs);
            request.gw.upstreamStatus = res.statusCode;
            if (isKeyRefusal(res.statusCode)) {
              if (res.statusCode !== 429) pool.rejected(target.lease);
              // The provider refused the GATEWAY's key: its body is never passed on (one mapping
              // with the cached routes, provider-refusal.ts).
              res.stream.resume();
              const error = refusalError(target.provider.name, res.statusCode, pool, cooldownMs);
              request.gw.error = error;
              for (const name of ['content-length', 'content-encoding', 'transfer-encoding', 'www-authenticate']) reply.removeHeader(name);
              void reply.code(error.statusCode).headers(error.headers).type('application/json').send(error.toBody());
              return;
            }
            if (res.statusCode >= 400) {
              void relayUpstreamError(target.provider.name, res, reply);
              return;
            }
            void reply.send(res.stream);
          },
          onError: (reply: FastifyReply, { error }: { error: { statusCode?: number } }) => {
            const name = targetOf(reply.request).provider.name;
            const mapped = error.statusCode === 504 ? errors.upstreamTimeout(name, error) : errors.upstreamUnreachable(name, error);
            reply.request.gw.error = mapped;
            void reply.code(mapped.statusCode).headers(mapped.headers).type('application/json').send(mapped.toBody());
          },
        },
        // reply-from's own undici Agent, with the same timeouts as the cached routes.
        undici: {
          connections: 64,
          connect: { timeout: deps.config.upstreamConnectTimeoutMs },
          headersTimeout: deps.config.upstreamHeadersTimeoutMs,
          bodyTimeout: deps.config.upstreamIdleTimeoutMs,
        },
        handler: (request: FastifyRequest, reply: FastifyReply, dest: string, fromOptions: object) => {
          const target = targetOf(request);
          const path = target.provider.basePath + (dest.startsWith('/') ? dest : `/${dest}`);
          const retryDelay = passthroughRetryDelay(target, deps.pools[target.provider.name], deps.config.upstreamMaxRetries);
          if (target.body === undefined) return reply.from(path, { ...fromOptions, retryDelay });
          // Handed over explicitly: left to itself, reply-from JSON.stringify()s a Buffer body
          // sent as application/json and drops the content-type's parameters (the multipart boundary).
          return reply.from(path, { ...fromOptions, retryDelay, body: target.body, contentType: request.headers['content-type'] ?? 'application/octet-stream' });
        },
      };
      // The plugin's option types do not model `handler` and typed hooks together; the shape is checked above.
      await scope.register(httpProxy, options as unknown as FastifyHttpProxyOptions);
    }
  });
}

function targetOf(request: FastifyRequest): PassthroughTarget {
  if (!request.passthrough) throw errors.internal(new Error('passthrough target missing'));
  return request.passthrough;
}

async function choose(request: FastifyRequest, prefix: string, deps: PassthroughDeps): Promise<PassthroughTarget> {
  const model = modelOf(request);
  // GET and HEAD carry no body upstream (reply-from refuses one).
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD' && Buffer.isBuffer(request.body) && request.body.length > 0;
  let body = hasBody ? (request.body as Buffer) : undefined;
  let name: ProviderName | undefined;
  if (model !== undefined) {
    const target = await deps.router.targetOf(model);
    if (!target) throw errors.modelNotFound(model);
    name = target.provider;
    if (target.upstreamModel !== model && body !== undefined) body = withModel(body, request.headers['content-type'] ?? '', target.upstreamModel);
  } else if (prefix === '/openai/v1') {
    name = 'groq';
  } else {
    name = deps.pools.openai.size > 0 || deps.pools.groq.size === 0 ? 'openai' : 'groq';
  }
  request.gw.model = model;
  const lease = deps.pools[name].acquire();
  if (isUnavailable(lease)) {
    if (lease.unavailable === 'cooling') throw errors.allKeysCooling(name, lease.retryAfterMs);
    if (lease.unavailable === 'disabled') throw errors.allKeysRejected(name);
    throw errors.noProviderKeys(name);
  }
  return { provider: deps.providers[name], lease, body };
}

/** The model named by a JSON body, a multipart field or the query, without parsing it all. */
function modelOf(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined;
  if (typeof query?.model === 'string' && query.model !== '') return query.model;
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0) return undefined;
  const found = modelInBody(body, request.headers['content-type'] ?? '');
  if ('invalidJson' in found) throw errors.invalidJson(found.invalidJson);
  return found.model;
}


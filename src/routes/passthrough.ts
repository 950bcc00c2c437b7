/**
 * Every other /v1/* route (audio, images, moderations, files, …) goes to a provider unchanged
 * through @fastify/http-proxy. The body is buffered (bounded by the body limit) so the
 * provider can be chosen from its `model`, JSON or multipart alike, and so it can be sent again.
 * It goes through the provider's policy dispatcher (upstream-policy.ts), as on the cached
 * routes: the client's key is replaced by a provider key there, and refusals and retries are
 * handled there, before any byte reaches the client.
 */
import { headerSafe } from '../http/header-value.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import httpProxy, { type FastifyHttpProxyOptions } from '@fastify/http-proxy';
import type { Dispatcher } from 'undici';
import { API_BASE_PATHS } from '../endpoints.js';
import { errors, GatewayError } from '../errors.js';
import { withoutHopByHop } from '../http/hop-by-hop.js';
import type { KeyPools } from '../keys/pools.js';
import type { Provider } from '../providers/index.js';
import { PROVIDER_NAMES, type ProviderName } from '../providers/provider-name.js';
import type { ModelRouter } from '../routing.js';
import { modelInBody, withModel } from './passthrough-body.js';
import { relayUpstreamError } from './passthrough-error.js';

interface PassthroughTarget {
  provider: Provider;
  /** The body to forward (the client's bytes; a forced provider prefix removed from its model). */
  body: Buffer | undefined;
  /** The model id the provider is asked for, when the request names one (X-Gateway-Model). */
  model: string | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    passthrough?: PassthroughTarget;
  }
}

/** Request headers that must not reach the provider: the client's credentials and identity. */
const DROPPED_REQUEST_HEADERS = new Set(['authorization', 'cookie', 'host', 'x-forwarded-for', 'x-real-ip', 'forwarded']);

export interface PassthroughDeps {
  providers: Readonly<Record<ProviderName, Provider>>;
  /** Each provider's Pool behind the upstream policy (upstream/pool.ts). */
  dispatchers: Readonly<Record<ProviderName, Dispatcher>>;
  pools: KeyPools;
  router: ModelRouter;
}

/**
 * reply-from takes one dispatcher for every request: the provider is named by the origin it is
 * asked for (reserved .invalid names, never resolved nor sent: the Host header made of it is
 * dropped below), and that provider's own dispatcher sends the request to the real origin.
 */
function providerAddress(name: ProviderName): string {
  return `http://${name}.provider.invalid`;
}

function providerRouter(dispatchers: Readonly<Record<ProviderName, Dispatcher>>): { request: Dispatcher['request'] } {
  const byAddress = new Map(PROVIDER_NAMES.map((name) => [providerAddress(name), dispatchers[name]]));
  const request = (options: Dispatcher.RequestOptions, callback: (error: Error | null, data?: Dispatcher.ResponseData) => void): void => {
    const dispatcher = byAddress.get(String(options.origin));
    if (dispatcher === undefined) callback(errors.internal(new Error(`no provider at ${String(options.origin)}`)));
    else dispatcher.request(options, callback);
  };
  return { request: request as Dispatcher['request'] };
}

/** Retries are the policy's: reply-from's own (GETs on a 503) would add a second layer. */
const noRetry = (): null => null;

export async function registerPassthrough(app: FastifyInstance, deps: PassthroughDeps): Promise<void> {
  const undici = providerRouter(deps.dispatchers);
  await app.register(async (scope) => {
    // Buffer every body here (JSON included, unparsed) so it can be inspected and forwarded as is.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    for (const prefix of API_BASE_PATHS) {
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
          if (request.passthrough.model !== undefined) void reply.header('x-gateway-model', headerSafe(request.passthrough.model));
        },
        replyOptions: {
          getUpstream: (request: FastifyRequest) => providerAddress(targetOf(request).provider.name),
          retryDelay: noRetry,
          rewriteRequestHeaders: (request: FastifyRequest, headers: Record<string, string | string[] | undefined>) => {
            // The provider key is written first by the policy; the client's never goes.
            const out: Record<string, string | string[] | undefined> = {};
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
          onResponse: (
            request: FastifyRequest,
            reply: FastifyReply,
            res: { statusCode: number; headers: Record<string, string | string[] | undefined>; stream: NodeJS.ReadableStream },
          ) => {
            // Never a 401, 403 or 429: the policy answers those with the gateway's own error.
            if (res.statusCode >= 400) {
              void relayUpstreamError(targetOf(request).provider.name, res, reply);
              return;
            }
            void reply.send(res.stream);
          },
          onError: (reply: FastifyReply, { error }: { error: { statusCode?: number; cause?: unknown } }) => {
            const name = targetOf(reply.request).provider.name;
            // reply-from wraps what the dispatcher failed with; the policy's own errors (no key
            // left, every key refused) pass as they are.
            const mapped =
              error.cause instanceof GatewayError
                ? error.cause
                : error.statusCode === 504
                  ? errors.upstreamTimeout(name, error)
                  : errors.upstreamUnreachable(name, error);
            reply.request.gw.error = mapped;
            void reply.code(mapped.statusCode).headers(mapped.headers).type('application/json').send(mapped.toBody());
          },
        },
        // The same connections, timeouts and policy as the cached routes.
        undici,
        handler: (request: FastifyRequest, reply: FastifyReply, dest: string, fromOptions: object) => {
          const target = targetOf(request);
          const path = target.provider.basePath + (dest.startsWith('/') ? dest : `/${dest}`);
          if (target.body === undefined) return reply.from(path, fromOptions);
          // Handed over explicitly: left to itself, reply-from JSON.stringify()s a Buffer body
          // sent as application/json and drops the content-type's parameters (the multipart boundary).
          return reply.from(path, { ...fromOptions, body: target.body, contentType: request.headers['content-type'] ?? 'application/octet-stream' });
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
  let upstreamModel: string | undefined;
  if (model !== undefined) {
    const target = await deps.router.targetOf(model);
    if (!target) throw errors.modelNotFound(model);
    name = target.provider;
    upstreamModel = target.upstreamModel;
    if (target.upstreamModel !== model && body !== undefined) body = withModel(body, request.headers['content-type'] ?? '', target.upstreamModel);
  } else if (prefix === '/openai/v1') {
    name = 'groq';
  } else {
    name = deps.pools.openai.size > 0 || deps.pools.groq.size === 0 ? 'openai' : 'groq';
  }
  request.gw.model = model;
  return { provider: deps.providers[name], body, model: upstreamModel };
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

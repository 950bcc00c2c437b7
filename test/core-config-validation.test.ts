/**
 * Start-up configuration: the contract's defaults, one clear error line naming the variable
 * for every invalid value, and the refusal to bind a non-loopback address without client
 * auth, both through loadConfig and through the real process (exit code and stderr).
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { runGatewayProcess } from './helpers/gateway-process.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).not.toContain('\n'); // one line
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('defaults are the contract', () => {
  it('an empty environment gives the documented values', () => {
    const config = loadConfig({});
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(8080);
    expect(config.openaiBaseUrl).toBe('https://api.openai.com/v1');
    expect(config.groqBaseUrl).toBe('https://api.groq.com/openai/v1');
    expect(config.cacheEnabled).toBe(true);
    expect(config.cacheTtlSeconds).toBe(86_400);
    expect(config.cacheMaxBytes).toBe(268_435_456);
    expect(config.cacheScope).toBe('shared');
    expect(config.logLevel).toBe('info');
    expect(config.bodyLimitBytes).toBe(25 * 1024 * 1024);
    expect(config.redisUrl).toBeUndefined();
    expect(config.gatewayApiKeys).toEqual([]);
  });

  it('keys come as comma lists or as the singular variable; TTL 0 means no expiry and is valid', () => {
    const config = loadConfig({ OPENAI_API_KEYS: 'sk-a, sk-b,,sk-a', GROQ_API_KEY: 'gsk-one', CACHE_TTL_SECONDS: '0', GATEWAY_API_KEYS: 'c1,c2' });
    expect(config.openaiKeys).toEqual(['sk-a', 'sk-b']);
    expect(config.groqKeys).toEqual(['gsk-one']);
    expect(config.cacheTtlSeconds).toBe(0);
    expect(config.gatewayApiKeys).toEqual(['c1', 'c2']);
  });
});

describe('invalid values name the variable', () => {
  it.each([
    ['OPENAI_BASE_URL', 'not a url'],
    ['GROQ_BASE_URL', 'ftp://api.groq.com/openai/v1'],
    ['OPENAI_BASE_URL', 'api.openai.com/v1'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['REDIS_URL', 'localhost:6379'],
    ['CACHE_TTL_SECONDS', '-1'],
    ['CACHE_TTL_SECONDS', '1.5'],
    ['CACHE_TTL_SECONDS', 'a day'],
    ['CACHE_MAX_BYTES', '-5'],
    ['CACHE_SCOPE', 'global'],
    ['CACHE_SCOPE', 'per_user'],
    ['CACHE_ENABLED', 'maybe'],
    ['PORT', '70000'],
    ['PORT', 'http'],
    ['LOG_LEVEL', 'loud'],
    ['BODY_LIMIT_BYTES', '-1'],
    ['HOST', 'not a host!'],
  ])('%s=%s', (name, value) => {
    expect(configError({ [name]: value }).message).toContain(name);
  });

  it('a malformed REDIS_URL is named without echoing its password', () => {
    const message = configError({ REDIS_URL: 'redis://:hunter2-secret@[not-a-host' }).message;
    expect(message).toContain('REDIS_URL');
    expect(message).not.toContain('hunter2-secret');
  });
});

describe('non-loopback bind without client auth', () => {
  it.each(['0.0.0.0', '::', '192.168.1.10', 'gateway.example.com'])('HOST=%s without GATEWAY_API_KEYS is refused, naming GATEWAY_API_KEYS', (host) => {
    const message = configError({ HOST: host }).message;
    expect(message).toContain('GATEWAY_API_KEYS');
    expect(message).toContain('HOST');
  });

  it.each(['127.0.0.1', '127.0.0.53', 'localhost', '::1'])('HOST=%s without GATEWAY_API_KEYS is fine (loopback)', (host) => {
    expect(loadConfig({ HOST: host }).host).toBe(host);
  });

  it('HOST=0.0.0.0 with GATEWAY_API_KEYS starts', () => {
    expect(loadConfig({ HOST: '0.0.0.0', GATEWAY_API_KEYS: 'client-key' }).host).toBe('0.0.0.0');
  });
});

describe('the real process refuses to start', () => {
  it('HOST=0.0.0.0 without GATEWAY_API_KEYS: exit 1 and one stderr line naming GATEWAY_API_KEYS', async () => {
    const { code, stderr } = await runGatewayProcess({ HOST: '0.0.0.0', OPENAI_API_KEYS: 'sk-never-printed-8888' });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('GATEWAY_API_KEYS');
    expect(stderr).not.toContain('sk-never-printed-8888');
  });

  it('an empty entry in OPENWEBUI_TASK_MARKERS: exit 1 naming OPENWEBUI_TASK_MARKERS', async () => {
    const { code, stderr } = await runGatewayProcess({ OPENWEBUI_TASK_MARKERS: '### Task:,,<chat_history>' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('OPENWEBUI_TASK_MARKERS');
  });

  it('an unknown CACHE_SCOPE: exit 1 naming CACHE_SCOPE', async () => {
    const { code, stderr } = await runGatewayProcess({ CACHE_SCOPE: 'everyone' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('CACHE_SCOPE');
  });
});

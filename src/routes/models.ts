/**
 * GET /v1/models (and Groq's layout): the live union of the providers' lists, as the model
 * policy shows it (only what the allow list serves, and every alias, owned by "gateway").
 */
import type { FastifyInstance } from 'fastify';
import { API_BASE_PATHS } from '../endpoints.js';
import { GatewayError } from '../errors.js';
import type { ModelPolicySource } from '../models-policy/model-policy.js';
import type { ModelLists } from '../providers/model-lists.js';

export function registerModelRoutes(app: FastifyInstance, lists: ModelLists, policies?: ModelPolicySource): void {
  const listed = async () => {
    const models = await lists.all();
    return policies ? policies.current.listed(models) : models;
  };
  for (const prefix of API_BASE_PATHS) {
    app.get(`${prefix}/models`, async (request) => {
      request.gw.endpoint = 'models';
      return { object: 'list', data: await listed() };
    });
    app.get<{ Params: { '*': string } }>(`${prefix}/models/*`, async (request) => {
      request.gw.endpoint = 'models';
      const id = request.params['*'];
      const model = (await listed()).find((m) => m.id === id);
      if (!model) throw new GatewayError(404, 'invalid_request_error', 'model_not_found', `The model "${id}" does not exist.`, { 'x-should-retry': 'false' });
      return model;
    });
  }
}

// The one place any error raised while serving a request becomes the catalog's
// `{code, message, details?}` body: keyhold's own errors as they are, fastify's validation and
// body-parsing errors as KH_ERR_INVALID_INPUT / KH_ERR_BODY_TOO_LARGE, anything else as
// KH_ERR_INTERNAL with the stack only in the log, never in the response.
import type { FastifyError, FastifyInstance } from 'fastify';
import { SchemaError } from 'keyhold-plugin-sdk';
import { isKeyholdError, KeyholdError } from '../errors.js';

interface ValidationProblem {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** "/meta/displayName" + additionalProperty "x" → "meta.displayName.x", readable in a message. */
function problemPath(problem: ValidationProblem): string {
  const segments = problem.instancePath.split('/').filter(Boolean);
  const extra = problem.params.additionalProperty ?? problem.params.missingProperty;
  if (typeof extra === 'string') segments.push(extra);
  return segments.join('.');
}

function describeProblem(problem: ValidationProblem): string {
  if (problem.keyword === 'additionalProperties') return 'unknown field';
  if (problem.keyword === 'required') return 'is required';
  if (problem.keyword === 'enum') return `must be one of ${(problem.params.allowedValues as unknown[]).join(', ')}`;
  return problem.message ?? problem.keyword;
}

function fromValidation(err: FastifyError): KeyholdError {
  const where = err.validationContext ?? 'request';
  const problems = (err.validation as ValidationProblem[]).map((p) => ({ path: problemPath(p), problem: describeProblem(p) }));
  const first = problems[0];
  const message = first ? `${where}${first.path ? ` ${first.path}` : ''}: ${first.problem}` : `${where} does not fit the schema`;
  return new KeyholdError('KH_ERR_INVALID_INPUT', message, { in: where, problems });
}

/** Maps anything thrown while handling a request to a catalog error; null means "unexpected". */
export function toKeyholdError(err: unknown): KeyholdError | null {
  if (isKeyholdError(err)) return err;
  if (err instanceof SchemaError) return new KeyholdError('KH_ERR_INVALID_INPUT', err.message, { path: err.path });
  const fastifyError = err as Partial<FastifyError>;
  if (Array.isArray(fastifyError.validation)) return fromValidation(err as FastifyError);
  const status = fastifyError.statusCode;
  if (typeof fastifyError.code === 'string' && fastifyError.code.startsWith('FST_') && status !== undefined && status >= 400 && status < 500) {
    if (status === 413) return new KeyholdError('KH_ERR_BODY_TOO_LARGE', 'the request body is over the size limit');
    if (status === 404) return new KeyholdError('KH_ERR_NOT_FOUND', 'no such route');
    // Malformed JSON, an empty JSON body, an unsupported content type: the request as sent cannot be read.
    return new KeyholdError('KH_ERR_INVALID_INPUT', fastifyError.message ?? 'the request cannot be read', { reason: fastifyError.code });
  }
  return null;
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(async (err, request, reply) => {
    const known = toKeyholdError(err);
    if (known) {
      if (known.status >= 500) request.log.error({ err }, known.message);
      // KH_ERR_BUSY says when to come back, in the header clients and proxies know.
      if (typeof known.details?.retryAfterSeconds === 'number') void reply.header('retry-after', String(known.details.retryAfterSeconds));
      return reply.code(known.status).send(known.toJSON());
    }
    request.log.error({ err }, 'unexpected error while handling the request');
    return reply.code(500).send(new KeyholdError('KH_ERR_INTERNAL', `an unexpected server error; the server log has the details under request id ${request.id}`).toJSON());
  });
  app.setNotFoundHandler(async (request, reply) => {
    const err = new KeyholdError('KH_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
    return reply.code(err.status).send(err.toJSON());
  });
}

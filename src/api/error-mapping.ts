// The one place any error raised while serving a request becomes the catalog's
// `{code, message, details?}` body: keyhold's own errors as they are, fastify's validation and
// body-parsing errors as KH_ERR_INVALID_INPUT / KH_ERR_BODY_TOO_LARGE, anything else as
// KH_ERR_INTERNAL with the stack only in the log, never in the response.
import type { FastifyError, FastifyInstance } from 'fastify';
import { SchemaError } from 'keyhold-plugin-sdk';
import { isKeyholdError, KeyholdError } from '../errors.js';
import { MAX_NAME_LENGTH } from '../identity/identity.js';
import { MAX_PARAM_LENGTH } from './request-input.js';

/** At most this many validation problems are listed: a body of thousands of wrong items gets a short answer. */
const MAX_PROBLEMS_LISTED = 20;

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
  const all = err.validation as ValidationProblem[];
  const problems = all.slice(0, MAX_PROBLEMS_LISTED).map((p) => ({ path: problemPath(p), problem: describeProblem(p) }));
  const first = problems[0];
  const message = first ? `${where}${first.path ? ` ${first.path}` : ''}: ${first.problem}` : `${where} does not fit the schema`;
  return new KeyholdError('KH_ERR_INVALID_INPUT', message, {
    in: where,
    problems,
    ...(all.length > problems.length && { moreProblems: all.length - problems.length }),
  });
}

/** Maps anything thrown while handling a request to a catalog error; null means "unexpected". */
export function toKeyholdError(err: unknown): KeyholdError | null {
  if (isKeyholdError(err)) return err;
  if (err instanceof SchemaError) return new KeyholdError('KH_ERR_INVALID_INPUT', err.message, { path: err.path });
  const fastifyError = err as Partial<FastifyError>;
  if (Array.isArray(fastifyError.validation)) return fromValidation(err as FastifyError);
  const status = fastifyError.statusCode;
  if (
    typeof fastifyError.code === 'string' &&
    fastifyError.code.startsWith('FST_') &&
    status !== undefined &&
    status >= 400 &&
    status < 500
  ) {
    if (status === 413) return new KeyholdError('KH_ERR_BODY_TOO_LARGE', 'the request body is over the size limit');
    if (status === 404) return new KeyholdError('KH_ERR_NOT_FOUND', 'no such route');
    if (fastifyError.code === 'FST_ERR_BAD_URL')
      return new KeyholdError(
        'KH_ERR_INVALID_INPUT',
        `path: ${fastifyError.message}: its percent-encoding is not valid UTF-8; encode each id or name with encodeURIComponent`,
        { in: 'path', reason: fastifyError.code },
      );
    if (fastifyError.code === 'FST_ERR_MAX_PARAM_LENGTH')
      return new KeyholdError(
        'KH_ERR_INVALID_INPUT',
        `path: a path parameter is over ${MAX_PARAM_LENGTH} characters; ids and names are at most ${MAX_NAME_LENGTH}`,
        { in: 'path', reason: fastifyError.code },
      );
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
      // A refusal that passes (the database lock, a full argon2 queue) says when to try again, in the header clients and proxies know.
      if (typeof known.details?.retryAfterSeconds === 'number') void reply.header('retry-after', String(known.details.retryAfterSeconds));
      return reply.code(known.status).send(known.toJSON());
    }
    request.log.error({ err }, 'unexpected error while handling the request');
    return reply
      .code(500)
      .send(
        new KeyholdError(
          'KH_ERR_INTERNAL',
          `an unexpected server error; the server log has the details under request id ${request.id}`,
        ).toJSON(),
      );
  });
  app.setNotFoundHandler(async (request, reply) => {
    const err = new KeyholdError('KH_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
    return reply.code(err.status).send(err.toJSON());
  });
}

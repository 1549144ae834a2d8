// Every error keyhold reports has a stable code from this one catalog, with its HTTP status.
// Clients and scripts match on `code`; the message is for people and may change.

export const ERRORS = {
  KH_ERR_INVALID_INPUT: { status: 400, summary: 'the request does not fit the schema' },
  KH_ERR_INVALID_NAME: { status: 400, summary: 'an id or group name is empty, too long or has forbidden characters' },
  KH_ERR_UNAUTHENTICATED: { status: 401, summary: 'no valid token was presented' },
  KH_ERR_TOKEN_EXPIRED: { status: 401, summary: 'the token has expired; log in again' },
  KH_ERR_TOKEN_REVOKED: { status: 401, summary: 'the token has been revoked; log in again' },
  KH_ERR_AUTH_FAILED: { status: 401, summary: 'unknown entity or wrong secret' },
  KH_ERR_FORBIDDEN: {
    status: 403,
    summary: 'the caller lacks a capability: the one the operation needs, or one its subject holds or confers',
  },
  KH_ERR_NOT_FOUND: { status: 404, summary: 'no such route' },
  KH_ERR_ENTITY_NOT_FOUND: { status: 404, summary: 'no entity with that id' },
  KH_ERR_GROUP_NOT_FOUND: { status: 404, summary: 'no group with that name' },
  KH_ERR_KV_KEY_NOT_FOUND: { status: 404, summary: 'no kv key of that name' },
  KH_ERR_EVENT_NOT_FOUND: {
    status: 404,
    summary: 'no committed event with that number (it may have been deleted after the retention period)',
  },
  KH_ERR_DEAD_LETTER_NOT_FOUND: { status: 404, summary: 'the event is not a dead letter (of that plugin)' },
  KH_ERR_PLUGIN_STATE_NOT_FOUND: { status: 404, summary: "the plugin's state has no live entry with that key" },
  KH_ERR_ACTION_NOT_FOUND: { status: 404, summary: 'no loaded plugin of that name offers that action' },
  KH_ERR_REQUEST_TIMEOUT: { status: 408, summary: 'the request did not arrive in time' },
  KH_ERR_ENTITY_EXISTS: { status: 409, summary: 'an entity with that id already exists' },
  KH_ERR_GROUP_EXISTS: { status: 409, summary: 'a group with that name already exists' },
  KH_ERR_NUMBER_TAKEN: { status: 409, summary: 'that number is already in use' },
  KH_ERR_ALREADY_MEMBER: { status: 409, summary: 'the entity is already a direct member of the group' },
  KH_ERR_NOT_A_MEMBER: { status: 409, summary: 'the entity is not a direct member of the group' },
  KH_ERR_EXPANSION_CYCLE: { status: 409, summary: 'the expansion would make groups include themselves' },
  KH_ERR_EXPANSION_EXISTS: { status: 409, summary: 'the group already has that expansion' },
  KH_ERR_EXPANSION_NOT_FOUND: { status: 409, summary: 'the group has no such expansion' },
  KH_ERR_GROUP_IN_USE: { status: 409, summary: 'other groups expand or are managed by this group' },
  KH_ERR_MANAGED_BY_CYCLE: { status: 409, summary: 'the managedBy would make a group manage itself, directly or through other groups' },
  KH_ERR_LAST_ROOT: { status: 409, summary: 'the change would leave no unlocked entity holding GLOBAL_ROOT' },
  KH_ERR_KV_KEY_EXISTS: { status: 409, summary: 'the kv key already exists; replace it instead' },
  KH_ERR_CONFLICT: { status: 409, summary: 'the subject was changed by another request meanwhile; nothing was written, retry' },
  KH_ERR_BODY_TOO_LARGE: { status: 413, summary: 'the request body is over the size limit' },
  KH_ERR_PLUGIN_VETO: { status: 422, summary: 'a plugin refused the request' },
  KH_ERR_HEADERS_TOO_LARGE: { status: 431, summary: 'the request line and headers are over the size limit' },
  KH_ERR_INTERNAL: { status: 500, summary: 'an unexpected server error' },
  KH_ERR_CONFIG_INVALID: { status: 500, summary: "the server's settings file is not valid (a plugin reload read it); nothing was changed" },
  KH_ERR_PLUGIN_FAILED: { status: 502, summary: 'a plugin crashed or failed while handling the request' },
  KH_ERR_PLUGIN_INVALID_RESULT: { status: 502, summary: 'a plugin returned an object that is not valid' },
  KH_ERR_EVENT_DELIVERY_FAILED: {
    status: 502,
    summary: 'a plugin failed to take a committed event retried by hand; it stays a dead letter',
  },
  KH_ERR_PLUGIN_UNAVAILABLE: { status: 503, summary: 'a plugin this request needs is down' },
  KH_ERR_BUSY: { status: 503, summary: 'too many secret checks are waiting; retry after Retry-After seconds' },
  KH_ERR_STORE_BUSY: { status: 503, summary: 'another process holds the database lock; retry later' },
  KH_ERR_STORE_FAILED: { status: 503, summary: 'the database cannot be read or written (an I/O error, a read-only or damaged file)' },
  KH_ERR_PLUGIN_TIMEOUT: { status: 504, summary: 'a plugin did not answer in time' },
  KH_ERR_REQUEST_DEADLINE: {
    status: 504,
    summary: 'the request reached its deadline waiting for other requests on the same subject, or between its stages; nothing was written',
  },
  KH_ERR_STORE_FULL: { status: 507, summary: 'the disk holding the database is full' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** The one error type keyhold throws for anything a client should see. */
export class KeyholdError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'KeyholdError';
    this.status = ERRORS[code].status;
  }

  /** The body every API error is sent as. */
  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isKeyholdError(err: unknown): err is KeyholdError {
  return err instanceof KeyholdError;
}

// A refused authentication. Whatever the reason (unknown id, wrong secret, locked, throttled, a
// plugin's veto, a verify plugin's refusal or silence), the client gets the one answer below, so that no answer tells whether an id
// exists or is locked; the reason travels beside it for the log and the metrics, never in the body.
import { KeyholdError } from '../errors.js';

/** Why an authentication was refused: the `reason` label of keyhold_auth_failures_total. */
export const AUTH_FAILURE_REASONS = [
  'wrong_secret',
  'unknown',
  'locked',
  'throttled',
  'plugin_veto',
  'verify_refused',
  'verify_unavailable',
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

export const AUTH_FAILED_MESSAGE = 'unknown entity or wrong secret';

export class AuthFailed extends KeyholdError {
  constructor(
    readonly reason: AuthFailureReason,
    /** For the log only (e.g. the vetoing plugin, the throttle key): never sent to the client. */
    readonly logDetail: Record<string, unknown> = {},
  ) {
    super('KH_ERR_AUTH_FAILED', AUTH_FAILED_MESSAGE);
  }
}

export function isAuthFailed(err: unknown): err is AuthFailed {
  return err instanceof AuthFailed;
}

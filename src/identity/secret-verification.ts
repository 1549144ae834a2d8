// The verify plugins' part of AuthCheck (docs/lifecycle.md "AuthCheck"): for an entity that one
// or more verify plugins claim, each is asked in call order with the presented secret (in `also`
// mode as the one before left it), and the outcome says what the built-in hash check still has to
// verify. Nothing here answers the client: a refusal is an AuthFailed like any other, thrown by
// the AuthCheck step at the same place as a wrong secret.
import { claims, needsGroups, type Entity, type VerifyContext, type VerifyResult } from 'keyhold-plugin-sdk';
import { PluginCallError, type Verifier } from '../lifecycle/dispatcher.js';
import type { StoreReader } from '../store/store.js';
import { AuthFailed } from './auth-failure.js';
import { resolveGroupsOf } from './expansions.js';

export interface Verification {
  /** What the built-in check verifies: the presented secret, or what `also` plugins left of it. */
  builtinSecret: string;
  /** A `replace` plugin accepted the secret: the built-in check does not decide (it runs on the dummy hash, for the time). */
  replaced: boolean;
  /** A plugin refused, or could not answer and its site chose no fallback: the login is refused with this. */
  refusal?: AuthFailed;
}

/** The verifiers that claim `entity` and do not exempt it, in call order. */
async function claimantsOf(verifiers: readonly Verifier[], reader: StoreReader, entity: Entity, requestId: string): Promise<Verifier[]> {
  const candidates = verifiers.filter((v) => {
    if (!v.exempt.has(entity.id)) return true;
    v.exempted?.(requestId, entity.id);
    return false;
  });
  if (candidates.length === 0) return [];
  const groups = needsGroups(candidates.flatMap((v) => v.claims))
    ? (await resolveGroupsOf(reader, entity.meta.groups)).map((g) => g.name)
    : [];
  return candidates.filter((v) => claims(v.claims, v.plugin, entity, groups));
}

/** The answer as the host uses it; a malformed one counts as a broken plugin. */
function checkedAnswer(result: unknown): VerifyResult {
  const { ok, secret, reason } = (result ?? {}) as Partial<VerifyResult>;
  if (
    typeof ok !== 'boolean' ||
    (secret !== undefined && typeof secret !== 'string') ||
    (reason !== undefined && typeof reason !== 'string')
  )
    throw new PluginCallError(
      'crash',
      `answered verify with ${JSON.stringify(result)}, not { ok: boolean, secret?: string, reason?: string }`,
    );
  return { ok, ...(secret !== undefined && { secret }), ...(reason !== undefined && { reason }) };
}

/** Asks every verify plugin that claims `entity` about `secret`; stops at the first refusal. */
export async function verifyWithPlugins(
  verifiers: readonly Verifier[],
  reader: StoreReader,
  entity: Entity,
  secret: string,
  context: VerifyContext,
): Promise<Verification> {
  let builtinSecret = secret;
  let replaced = false;
  for (const verifier of await claimantsOf(verifiers, reader, entity, context.requestId)) {
    const { plugin, mode } = verifier;
    let answer: VerifyResult;
    try {
      answer = checkedAnswer(await verifier.verify({ entity, secret: builtinSecret, mode, context }));
    } catch (err) {
      // The site's choice: as if this plugin did not claim the entity (verifyFallback: builtin), or fail closed.
      if (verifier.fallback === 'builtin') continue;
      const kind = err instanceof PluginCallError ? err.kind : 'crash';
      return { builtinSecret, replaced, refusal: new AuthFailed('verify_unavailable', { plugin, kind, reason: (err as Error).message }) };
    }
    if (!answer.ok) return { builtinSecret, replaced, refusal: new AuthFailed('verify_refused', { plugin, reason: answer.reason ?? '' }) };
    if (mode === 'replace') replaced = true;
    else builtinSecret = answer.secret ?? builtinSecret;
  }
  return { builtinSecret, replaced };
}

// AuthCheck as a lifecycle step: an id and a secret checked, with the AuthCheck hooks around the
// check. The secret is verified on the load, under the entity's lock only (never the store's write
// lock): before any hook, so that every refusal (unknown, a plugin's veto, locked, wrong) costs the
// same verify, and the hash checked is the one stored until the request ends. For an entity that
// verify plugins claim they are asked first (secret-verification.ts); the argon2 check runs all
// the same (on the dummy hash when a `replace` plugin decided), so the time tells no more than
// before. A login opens a write transaction only when a hook changed the entity or the hash is upgraded.
import { jsonEqual, type Entity } from 'keyhold-plugin-sdk';
import { isKeyholdError } from '../errors.js';
import { hookContext, REQUEST_DEADLINE_MS, type LifecycleStep, type RequestInfo } from '../lifecycle/engine.js';
import { AuthFailed } from './auth-failure.js';
import type { SecretHasher, Verdict } from './secret-hasher.js';
import { verifyWithPlugins, type Verification } from './secret-verification.js';
import { entityRef, saveEntity } from './steps.js';

/** A plugin's veto of an AuthCheck is a refused login like any other (the client is not told which plugin, nor that one did); crashes and timeouts stay 5xx. */
export function asLoginRefusal(err: unknown): unknown {
  if (!isKeyholdError(err) || err.code !== 'KH_ERR_PLUGIN_VETO') return err;
  return new AuthFailed('plugin_veto', { ...err.details });
}

/** The step of one check; every refusal is the same AuthFailed for the client, its reason for the log and metrics. */
export function authCheckStep(info: RequestInfo, id: string, secret: string, hasher: SecretHasher): LifecycleStep<Entity> {
  let verdict: Verdict | undefined;
  let verification: Verification | undefined;
  let upgrade: string | undefined;
  // The verify call's context: the hooks' (engine.ts) without the state bag, which a verify call is not part of.
  const { state: _state, ...context } = hookContext(info, 'auth.check', (info.arrivedAt ?? Date.now()) + REQUEST_DEADLINE_MS);
  let version: number | undefined;
  return {
    point: 'AuthCheck',
    operation: 'auth.check',
    request: {},
    subjects: [entityRef(id)],
    load: async (reader, _previous, dispatcher) => {
      // One read: the entity, its hash and the version the commit compares against, from one snapshot.
      const record = await reader.loginRecord(id);
      version = record?.version;
      verification = record && (await verifyWithPlugins(dispatcher.verifiers ?? [], reader, record.entity, secret, context));
      const builtin = verification === undefined || verification.replaced ? undefined : verification.builtinSecret;
      // An unknown id (or one a `replace` plugin decided) is checked against the dummy hash: it answers in the same time as a wrong secret.
      verdict = await hasher.verify(builtin === undefined ? undefined : record?.secretHash, builtin ?? secret);
      if (!record) throw new AuthFailed('unknown');
      return record.entity;
    },
    loadedVersion: () => version,
    change: async (_reader, entity) => {
      // Locked (by an operator, or for this request by a PRE hook such as fail2lock): the hash was checked all the same, so the time does not tell.
      if (entity.meta.locked) throw new AuthFailed('locked');
      if (verification?.refusal) throw verification.refusal;
      if (verification?.replaced) return entity;
      if (!verdict?.ok) throw new AuthFailed('wrong_secret');
      upgrade = await hasher.upgrade(verdict, verification?.builtinSecret ?? secret);
      return entity;
    },
    // Written only when something changed (a hook's edit, a new hash): most logins open no write transaction.
    writes: (loaded, final) => upgrade !== undefined || !jsonEqual(final, loaded),
    commit: async (tx, loaded, final) => {
      if (!jsonEqual(final, loaded)) await saveEntity(tx, final);
      if (upgrade !== undefined) await tx.setSecretHash(id, upgrade);
    },
  };
}

// Tokens are revocable: on every authenticated request a token that is valid by itself (tokens.ts)
// must also still hold against the store: its entity exists, is the same incarnation and is not
// locked, the token carries the entity's current token generation (new for every created entity,
// replaced on a secret change, a lock and a logout), and its capabilities are exactly the entity's
// effective capabilities today (one lost or gained, directly or through a group, ends the token).
// Cheap: what the check reads is cached per entity, and the whole cache is dropped as soon as the
// store reports a commit since it was filled (by this process or any other), so a change is seen
// by the very next request.
import type { Capability } from 'keyhold-plugin-sdk';
import { isKeyholdError, KeyholdError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { TokenClaims } from './tokens.js';

/** At most this many entities are cached; past it the cache starts afresh (a bound on memory, not a policy). */
const MAX_CACHED_ENTITIES = 10_000;

/** What a token of the entity must match; null: there is no such entity. */
type TokenState = { generation: string; locked: boolean; capabilities: string } | null;

/** Capabilities in a form two lists compare as sets by. */
function capabilitySet(capabilities: readonly Capability[]): string {
  return [...new Set(capabilities)].sort().join(' ');
}

export class TokenRevocation {
  private readonly cache = new Map<string, TokenState>();
  /** The store's change counter when the cache was last emptied. */
  private filledAt: number | undefined;

  constructor(
    private readonly store: Store,
    /** The entity's effective capabilities (direct and through groups); throws KH_ERR_ENTITY_NOT_FOUND. */
    private readonly effectiveCapabilities: (entityId: string) => Promise<Capability[]>,
  ) {}

  /** Throws KH_ERR_TOKEN_REVOKED unless the claims still hold against the store. */
  async check(claims: TokenClaims): Promise<void> {
    const state = await this.stateOf(claims.sub);
    // One answer for every reason: the bearer learns no more than that this token is over.
    if (!state || state.locked || state.generation !== claims.gen || state.capabilities !== capabilitySet(claims.caps)) {
      throw new KeyholdError('KH_ERR_TOKEN_REVOKED', 'this token has been revoked; log in again');
    }
  }

  /** The generation a token issued now must carry; undefined when there is no such entity. */
  generationOf(entityId: string): Promise<string | undefined> {
    return this.store.reader.tokenGeneration(entityId);
  }

  /** Revokes every token of the entity (logout ends every session of it). */
  revokeAll(entityId: string): Promise<void> {
    return this.store.write((tx) => tx.renewTokenGeneration(entityId));
  }

  private async stateOf(entityId: string): Promise<TokenState> {
    const counter = await this.store.changeCounter();
    if (counter !== this.filledAt) {
      this.cache.clear();
      this.filledAt = counter;
    }
    const cached = this.cache.get(entityId);
    if (cached !== undefined) return cached;
    const state = await this.load(entityId);
    // Read after `counter`, so at least as new as it; kept only if no other request has seen a
    // newer counter meanwhile (it would be filed under that counter while possibly older).
    if (this.filledAt === counter) {
      if (this.cache.size >= MAX_CACHED_ENTITIES) this.cache.clear();
      this.cache.set(entityId, state);
    }
    return state;
  }

  private async load(entityId: string): Promise<TokenState> {
    const entity = await this.store.reader.getEntity(entityId);
    const generation = await this.store.reader.tokenGeneration(entityId);
    if (!entity || generation === undefined) return null;
    try {
      return { generation, locked: entity.meta.locked, capabilities: capabilitySet(await this.effectiveCapabilities(entityId)) };
    } catch (err) {
      // Destroyed between the reads.
      if (isKeyholdError(err) && err.code === 'KH_ERR_ENTITY_NOT_FOUND') return null;
      throw err;
    }
  }
}

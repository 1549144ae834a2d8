// Writes of the PostgreSQL store, inside the one transaction postgres-store.ts opened on its own
// connection. The database enforces uniqueness and references; their violations become the same
// catalog errors as on SQLite (postgres-faults.ts). A failed statement aborts a PostgreSQL
// transaction, so every such error ends the write: the store rolls it back.
import { randomBytes } from 'node:crypto';
import { encodeEntity, encodeGroup, type Capability, type Entity, type Group } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../../errors.js';
import type { OutboxWriter } from '../outbox.js';
import type { StoreTransaction, SubjectRef, ThrottleRecord } from '../store.js';
import type { Inserted } from '../uniqueness-errors.js';
import { isForeignKeyViolation, mapConstraintError } from './postgres-faults.js';
import { PostgresOutboxWriter } from './postgres-outbox.js';
import { numberFor, PostgresReader, type Query } from './postgres-reader.js';

/** A new token generation: 128 random bits, hex, as the SQLite store makes them. */
const newGeneration = (): string => randomBytes(16).toString('hex');

/** The blob part of an entity: everything but the columns (id, number, secret) and the memberships. */
function entityData(entity: Entity): Buffer {
  return Buffer.from(encodeEntity({ id: '', number: 0, secret: '', meta: { ...entity.meta, groups: [] } }));
}

function groupData(group: Group): Buffer {
  return Buffer.from(encodeGroup({ ...group, name: '', number: 0, managedBy: '', expansions: [] }));
}

/** Runs `run`, mapping uniqueness violations to the catalog. */
async function mapped<T>(run: () => Promise<T>, inserted?: Inserted): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw mapConstraintError(err, inserted);
  }
}

/** Rows a statement changed, through RETURNING (the Query interface gives rows only). */
const RETURNING = ' RETURNING 1 AS changed';

export class PostgresTransaction extends PostgresReader implements StoreTransaction {
  readonly outbox: OutboxWriter;
  /** open: false once the transaction has committed or rolled back, so that a late write cannot land in the next one. */
  private readonly state: { open: boolean };

  constructor(query: Query) {
    const state = { open: true };
    const guarded: Query = (sql, params) =>
      state.open ? query(sql, params) : Promise.reject(new Error('store transaction used after it ended'));
    super(guarded);
    this.state = state;
    this.outbox = new PostgresOutboxWriter(guarded);
  }

  /** Called when the transaction has ended: later calls fail. */
  end(): void {
    this.state.open = false;
  }

  /**
   * Inside the write transaction the version is read FOR UPDATE: the engine's commit re-validates
   * its subjects with it, and the row lock keeps the row as read until this transaction ends, on
   * every server (the store's write lock already orders writes; this holds even without it).
   */
  override async version(subject: SubjectRef): Promise<number | undefined> {
    const sql =
      subject.kind === 'entity'
        ? 'SELECT version FROM entities WHERE id = $1 FOR UPDATE'
        : 'SELECT version FROM groups WHERE name = $1 FOR UPDATE';
    return (await this.query<{ version: number }>(sql, [subject.key]))[0]?.version;
  }

  insertEntity(entity: Entity): Promise<Entity> {
    return mapped(
      async () => {
        const number = await numberFor(this.query, 'entity', entity.number);
        await this.query('INSERT INTO entities (id, number, secret, display_name, legal_name, data) VALUES ($1, $2, $3, $4, $5, $6)', [
          entity.id,
          number,
          '',
          entity.meta.displayName,
          entity.meta.legalName,
          entityData(entity),
        ]);
        await this.query('INSERT INTO token_generations (entity_id, generation) VALUES ($1, $2)', [entity.id, newGeneration()]);
        await this.writeCapabilities('entity', entity.id, entity.meta.capabilities);
        return { ...entity, number, meta: { ...entity.meta, groups: [] } };
      },
      { kind: 'entity', key: entity.id, number: entity.number },
    );
  }

  async updateEntity(entity: Entity): Promise<void> {
    await this.change(
      'UPDATE entities SET display_name = $1, legal_name = $2, data = $3, version = version + 1 WHERE id = $4',
      [entity.meta.displayName, entity.meta.legalName, entityData(entity), entity.id],
      () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${entity.id}"`),
    );
    await this.writeCapabilities('entity', entity.id, entity.meta.capabilities);
  }

  deleteEntity(id: string): Promise<void> {
    return this.change('DELETE FROM entities WHERE id = $1', [id], () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`));
  }

  setSecretHash(id: string, hash: string): Promise<void> {
    return this.change(
      'UPDATE entities SET secret = $1, version = version + 1 WHERE id = $2',
      [hash, id],
      () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`),
    );
  }

  renewTokenGeneration(entityId: string): Promise<void> {
    return this.change('UPDATE token_generations SET generation = $1 WHERE entity_id = $2', [newGeneration(), entityId]);
  }

  recordBootstrapRoot(id: string): Promise<void> {
    return this.change(
      "INSERT INTO server_facts (key, value) VALUES ('bootstrapRoot', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      [id],
    );
  }

  insertGroup(group: Group): Promise<Group> {
    return mapped(
      async () => {
        const number = await numberFor(this.query, 'group', group.number);
        await this.query('INSERT INTO groups (name, number, display_name, managed_by, data) VALUES ($1, $2, $3, $4, $5)', [
          group.name,
          number,
          group.displayName,
          group.managedBy || null,
          groupData(group),
        ]);
        await this.writeExpansions(group);
        await this.writeCapabilities('group', group.name, group.capabilities);
        return { ...group, number };
      },
      { kind: 'group', key: group.name, number: group.number },
    );
  }

  async updateGroup(group: Group): Promise<void> {
    await this.change(
      'UPDATE groups SET display_name = $1, managed_by = $2, data = $3, version = version + 1 WHERE name = $4',
      [group.displayName, group.managedBy || null, groupData(group), group.name],
      () => new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${group.name}"`),
    );
    await this.query('DELETE FROM expansions WHERE group_name = $1', [group.name]);
    await mapped(() => this.writeExpansions(group));
    await this.writeCapabilities('group', group.name, group.capabilities);
  }

  /** Refused by the database (foreign keys) while other groups expand or are managed by this one. */
  async deleteGroup(name: string): Promise<void> {
    // Read first: after the refusal the transaction is aborted and can no longer say who holds the group.
    const users = [...new Set([...(await this.groupsExpanding(name)), ...(await this.groupsManagedBy(name))])]
      .filter((g) => g !== name)
      .sort();
    await this.change(
      'DELETE FROM groups WHERE name = $1',
      [name],
      () => new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${name}"`),
      () =>
        new KeyholdError('KH_ERR_GROUP_IN_USE', `group "${name}" is still expanded or managed by ${users.join(', ')}`, { groups: users }),
    );
  }

  async addMembership(entityId: string, group: string): Promise<void> {
    await mapped(() => this.change('INSERT INTO memberships (entity_id, group_name) VALUES ($1, $2)', [entityId, group]));
    await this.bumpEntity(entityId);
  }

  async removeMembership(entityId: string, group: string): Promise<void> {
    await this.change(
      'DELETE FROM memberships WHERE entity_id = $1 AND group_name = $2',
      [entityId, group],
      () => new KeyholdError('KH_ERR_NOT_A_MEMBER', `"${entityId}" is not a direct member of "${group}"`),
    );
    await this.bumpEntity(entityId);
  }

  /** An entity's memberships are part of it: changing them moves its version. */
  private bumpEntity(id: string): Promise<void> {
    return this.change('UPDATE entities SET version = version + 1 WHERE id = $1', [id]);
  }

  /** Replaces the by-capability copy of what the subject's blob says it holds. */
  private async writeCapabilities(kind: 'entity' | 'group', key: string, capabilities: readonly Capability[]): Promise<void> {
    const [table, column] = kind === 'entity' ? ['entity_capabilities', 'entity_id'] : ['group_capabilities', 'group_name'];
    await this.query(`DELETE FROM ${table} WHERE ${column} = $1`, [key]);
    await this.query(`INSERT INTO ${table} (${column}, capability) SELECT $1, c FROM unnest($2::text[]) AS c`, [
      key,
      [...new Set(capabilities)],
    ]);
  }

  private async writeExpansions(group: Group): Promise<void> {
    await this.query(
      'INSERT INTO expansions (group_name, position, mode, target) SELECT $1, e.position - 1, e.mode, e.target FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS e (mode, target, position)',
      [group.name, group.expansions.map((e) => e.mode), group.expansions.map((e) => e.group)],
    );
  }

  async putThrottleRecords(records: readonly ThrottleRecord[]): Promise<void> {
    for (const r of records)
      await this.query(
        `INSERT INTO login_throttle (key, failures, last_failure, blocked_until) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure, blocked_until = excluded.blocked_until`,
        [r.key, r.failures, r.lastFailure, r.blockedUntil],
      );
  }

  async deleteThrottleRecords(keys: readonly string[]): Promise<void> {
    await this.query('DELETE FROM login_throttle WHERE key = ANY($1::text[])', [keys]);
  }

  async rememberLogin(entityId: string, address: string, at: number): Promise<void> {
    // Through SELECT … WHERE EXISTS: an entity destroyed since its login is not an error, just nothing to remember.
    await this.query(
      `INSERT INTO familiar_addresses (entity_id, address, last_login) SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM entities WHERE id = $1)
       ON CONFLICT (entity_id, address) DO UPDATE SET last_login = excluded.last_login`,
      [entityId, address, at],
    );
  }

  async pruneLoginThrottle(now: number, failuresBefore: number, loginsBefore: number): Promise<void> {
    await this.query('DELETE FROM login_throttle WHERE blocked_until <= $1 AND last_failure < $2', [now, failuresBefore]);
    await this.query('DELETE FROM familiar_addresses WHERE last_login < $1', [loginsBefore]);
  }

  /**
   * Runs one write statement. `missing`: the error when it changed no row; `referenced`: the error
   * when a foreign key refuses it (otherwise a bug: the identity layer checks references first).
   */
  private async change(sql: string, params: unknown[], missing?: () => Error, referenced?: () => Error): Promise<void> {
    let changed: number;
    try {
      changed = (await this.query(sql + RETURNING, params)).length;
    } catch (err) {
      if (referenced && isForeignKeyViolation(err)) throw referenced();
      throw err;
    }
    if (changed === 0 && missing) throw missing();
  }
}

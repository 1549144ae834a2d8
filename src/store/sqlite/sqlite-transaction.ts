// The SQLite store's writes: one SqliteTransaction per write transaction, on the write
// connection, inside the BEGIN IMMEDIATE … COMMIT that sqlite-store.ts runs. Every write to a
// subject moves its version, which the engine's commit compares.
import Database from 'better-sqlite3';
import { encodeEntity, encodeGroup, type Capability, type Entity, type Group } from 'keyhold-plugin-sdk';
import { KeyholdError } from '../../errors.js';
import type { OutboxWriter } from '../outbox.js';
import type { StoreTransaction, ThrottleRecord } from '../store.js';
import { SqliteOutboxWriter } from './sqlite-outbox.js';
import * as throttle from './throttle-rows.js';
import { SqliteReader, settle, numberFor, NEW_GENERATION } from './sqlite-reader.js';

/** The blob part of an entity: everything but the columns (id, number, secret) and the memberships. */
function entityData(entity: Entity): Buffer {
  return Buffer.from(encodeEntity({ id: '', number: 0, secret: '', meta: { ...entity.meta, groups: [] } }));
}

function groupData(group: Group): Buffer {
  return Buffer.from(encodeGroup({ ...group, name: '', number: 0, managedBy: '', expansions: [] }));
}

export class SqliteTransaction extends SqliteReader implements StoreTransaction {
  /** False once the transaction has committed or rolled back: a late write must not land in the next one. */
  open = true;
  readonly outbox: OutboxWriter = new SqliteOutboxWriter(() => this.writable());

  private writable(): Database.Database {
    if (!this.open) throw new Error('store transaction used after it ended');
    return this.db;
  }

  insertEntity(entity: Entity): Promise<Entity> {
    return settle(
      () => {
        const db = this.writable();
        const number = numberFor(db, 'entities', entity.number);
        db.prepare('INSERT INTO entities (id, number, secret, display_name, legal_name, data) VALUES (?, ?, ?, ?, ?, ?)').run(
          entity.id,
          number,
          '',
          entity.meta.displayName,
          entity.meta.legalName,
          entityData(entity),
        );
        db.prepare(`INSERT INTO token_generations (entity_id, generation) VALUES (?, ${NEW_GENERATION})`).run(entity.id);
        this.writeCapabilities('entity', entity.id, entity.meta.capabilities);
        return { ...entity, number, meta: { ...entity.meta, groups: [] } };
      },
      { kind: 'entity', key: entity.id, number: entity.number },
    );
  }

  async updateEntity(entity: Entity): Promise<void> {
    await this.change(
      'UPDATE entities SET display_name = ?, legal_name = ?, data = ?, version = version + 1 WHERE id = ?',
      [entity.meta.displayName, entity.meta.legalName, entityData(entity), entity.id],
      () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${entity.id}"`),
    );
    this.writeCapabilities('entity', entity.id, entity.meta.capabilities);
  }

  deleteEntity(id: string): Promise<void> {
    return this.change('DELETE FROM entities WHERE id = ?', [id], () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`));
  }

  setSecretHash(id: string, hash: string): Promise<void> {
    return this.change(
      'UPDATE entities SET secret = ?, version = version + 1 WHERE id = ?',
      [hash, id],
      () => new KeyholdError('KH_ERR_ENTITY_NOT_FOUND', `no entity "${id}"`),
    );
  }

  renewTokenGeneration(entityId: string): Promise<void> {
    return this.change(`UPDATE token_generations SET generation = ${NEW_GENERATION} WHERE entity_id = ?`, [entityId]);
  }

  recordBootstrapRoot(id: string): Promise<void> {
    return settle(() => {
      this.writable()
        .prepare("INSERT INTO server_facts (key, value) VALUES ('bootstrapRoot', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .run(id);
    });
  }

  insertGroup(group: Group): Promise<Group> {
    return settle(
      () => {
        const db = this.writable();
        const number = numberFor(db, 'groups', group.number);
        db.prepare('INSERT INTO groups (name, number, display_name, managed_by, data) VALUES (?, ?, ?, ?, ?)').run(
          group.name,
          number,
          group.displayName,
          group.managedBy || null,
          groupData(group),
        );
        this.writeExpansions(group);
        this.writeCapabilities('group', group.name, group.capabilities);
        return { ...group, number };
      },
      { kind: 'group', key: group.name, number: group.number },
    );
  }

  updateGroup(group: Group): Promise<void> {
    return settle(() => {
      const result = this.writable()
        .prepare('UPDATE groups SET display_name = ?, managed_by = ?, data = ?, version = version + 1 WHERE name = ?')
        .run(group.displayName, group.managedBy || null, groupData(group), group.name);
      if (result.changes === 0) throw new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${group.name}"`);
      this.db.prepare('DELETE FROM expansions WHERE group_name = ?').run(group.name);
      this.writeExpansions(group);
      this.writeCapabilities('group', group.name, group.capabilities);
    });
  }

  /** Refused by the database (foreign keys) while other groups expand or are managed by this one. */
  deleteGroup(name: string): Promise<void> {
    return this.change(
      'DELETE FROM groups WHERE name = ?',
      [name],
      () => new KeyholdError('KH_ERR_GROUP_NOT_FOUND', `no group "${name}"`),
      () => {
        const users = [...new Set([...this.expanding(name), ...this.managed(name)])].filter((g) => g !== name).sort();
        return new KeyholdError('KH_ERR_GROUP_IN_USE', `group "${name}" is still expanded or managed by ${users.join(', ')}`, {
          groups: users,
        });
      },
    );
  }

  async addMembership(entityId: string, group: string): Promise<void> {
    await this.change('INSERT INTO memberships (entity_id, group_name) VALUES (?, ?)', [entityId, group]);
    await this.bumpEntity(entityId);
  }

  async removeMembership(entityId: string, group: string): Promise<void> {
    await this.change(
      'DELETE FROM memberships WHERE entity_id = ? AND group_name = ?',
      [entityId, group],
      () => new KeyholdError('KH_ERR_NOT_A_MEMBER', `"${entityId}" is not a direct member of "${group}"`),
    );
    await this.bumpEntity(entityId);
  }

  /** An entity's memberships are part of it: changing them moves its version. */
  private bumpEntity(id: string): Promise<void> {
    return this.change('UPDATE entities SET version = version + 1 WHERE id = ?', [id]);
  }

  /** Replaces the by-capability copy of what the subject's blob says it holds. */
  private writeCapabilities(kind: 'entity' | 'group', key: string, capabilities: readonly Capability[]): void {
    const [table, column] = kind === 'entity' ? ['entity_capabilities', 'entity_id'] : ['group_capabilities', 'group_name'];
    this.db.prepare(`DELETE FROM ${table} WHERE ${column} = ?`).run(key);
    const insert = this.db.prepare(`INSERT INTO ${table} (${column}, capability) VALUES (?, ?)`);
    for (const capability of new Set(capabilities)) insert.run(key, capability);
  }

  putThrottleRecords(records: readonly ThrottleRecord[]): Promise<void> {
    return settle(() => throttle.writeThrottleRecords(this.writable(), records));
  }

  deleteThrottleRecords(keys: readonly string[]): Promise<void> {
    return settle(() => throttle.deleteThrottleRecords(this.writable(), keys));
  }

  rememberLogin(entityId: string, address: string, at: number): Promise<void> {
    return settle(() => throttle.writeLastLogin(this.writable(), entityId, address, at));
  }

  pruneLoginThrottle(now: number, failuresBefore: number, loginsBefore: number): Promise<void> {
    return settle(() => throttle.pruneLoginThrottle(this.writable(), now, failuresBefore, loginsBefore));
  }

  private writeExpansions(group: Group): void {
    const insert = this.db.prepare('INSERT INTO expansions (group_name, position, mode, target) VALUES (?, ?, ?, ?)');
    group.expansions.forEach((e, position) => insert.run(group.name, position, e.mode, e.group));
  }

  /**
   * Runs one write statement. `missing`: the error when it changed no row; `referenced`: the error
   * when a foreign key refuses it (otherwise a bug: the identity layer checks references first).
   */
  private change(sql: string, params: unknown[], missing?: () => Error, referenced?: () => Error): Promise<void> {
    return settle(() => {
      let changes: number;
      try {
        changes = this.writable()
          .prepare(sql)
          .run(...params).changes;
      } catch (err) {
        if (referenced && err instanceof Database.SqliteError && err.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw referenced();
        throw err;
      }
      if (changes === 0 && missing) throw missing();
    });
  }
}

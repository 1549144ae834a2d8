// Reads of the PostgreSQL store, over the pool (committed data only) or inside a write transaction
// on its connection (seeing the transaction's own writes). Each method is one statement, so it
// reads one snapshot without a transaction of its own: an entity comes with its memberships and a
// group with its expansions through sub-selects of the same statement.
import { decodeEntity, decodeGroup, type Capability, type Entity, type ExpansionMode, type Group } from 'keyhold-plugin-sdk';
import type { QueryResultRow } from 'pg';
import { KeyholdError } from '../../errors.js';
import type { LoginRecord, SearchQuery, StoreReader, SubjectRef, ThrottleRecord } from '../store.js';

const DEFAULT_SEARCH_LIMIT = 100;
const INT32_MAX = 2147483647;

/** Runs one statement: the pool, or the write transaction's connection. */
export type Query = <R extends QueryResultRow>(sql: string, params?: unknown[]) => Promise<R[]>;

interface EntityRow {
  id: string;
  number: number;
  data: Buffer;
  groups: string[];
}

interface GroupRow {
  name: string;
  number: number;
  managed_by: string | null;
  data: Buffer;
  expansions: { mode: ExpansionMode; target: string }[];
}

const ENTITY_COLUMNS =
  'id, number, data, ARRAY(SELECT group_name FROM memberships m WHERE m.entity_id = e.id ORDER BY group_name) AS groups';
const ENTITY_SELECT = `SELECT ${ENTITY_COLUMNS} FROM entities e`;
const GROUP_SELECT = `SELECT name, number, managed_by, data,
  coalesce((SELECT json_agg(json_build_object('mode', x.mode, 'target', x.target) ORDER BY x.position) FROM expansions x WHERE x.group_name = g.name), '[]') AS expansions
  FROM groups g`;

function entityFrom(row: EntityRow): Entity {
  const stored = decodeEntity(row.data);
  return { ...stored, id: row.id, number: row.number, secret: '', meta: { ...stored.meta, groups: row.groups } };
}

function groupFrom(row: GroupRow): Group {
  const expansions = row.expansions.map((r) => ({ mode: r.mode, group: r.target }));
  return { ...decodeGroup(row.data), name: row.name, number: row.number, managedBy: row.managed_by ?? '', expansions };
}

/** The search text as an ILIKE pattern matching it anywhere, the wildcards escaped; SQLite's LIKE is case-insensitive too. */
function pattern(query: SearchQuery): string {
  return `%${(query.text ?? '').replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The number an insert gets for `number` 0: the highest in use plus one (callers hold the store's write lock, so no other server takes it meanwhile). */
export async function numberFor(query: Query, kind: SubjectRef['kind'], number: number): Promise<number> {
  if (number !== 0) return number;
  const table = kind === 'entity' ? 'entities' : 'groups';
  const next = (await query<{ n: number }>(`SELECT coalesce(max(number), 0) + 1 AS n FROM ${table}`))[0]!.n;
  if (next > INT32_MAX)
    throw new KeyholdError('KH_ERR_NUMBER_TAKEN', `no automatic ${kind} number is left above the highest one in use; give a number`);
  return next;
}

export class PostgresReader implements StoreReader {
  constructor(protected readonly query: Query) {}

  async getEntity(id: string): Promise<Entity | undefined> {
    const [row] = await this.query<EntityRow>(`${ENTITY_SELECT} WHERE id = $1`, [id]);
    return row && entityFrom(row);
  }

  async secretHash(id: string): Promise<string | undefined> {
    return (await this.query<{ secret: string }>('SELECT secret FROM entities WHERE id = $1', [id]))[0]?.secret;
  }

  async loginRecord(id: string): Promise<LoginRecord | undefined> {
    // One statement: one snapshot for the entity, its hash and its version.
    const [row] = await this.query<EntityRow & { secret: string; version: number }>(
      `SELECT ${ENTITY_COLUMNS}, secret, version FROM entities e WHERE id = $1`,
      [id],
    );
    return row && { entity: entityFrom(row), secretHash: row.secret, version: row.version };
  }

  async searchEntities(query: SearchQuery): Promise<Entity[]> {
    const rows = await this.query<EntityRow>(
      `${ENTITY_SELECT} WHERE id > $1 AND (id ILIKE $2 ESCAPE '\\' OR display_name ILIKE $2 ESCAPE '\\' OR legal_name ILIKE $2 ESCAPE '\\') ORDER BY id LIMIT $3`,
      [query.after ?? '', pattern(query), query.limit ?? DEFAULT_SEARCH_LIMIT],
    );
    return rows.map(entityFrom);
  }

  async countEntities(): Promise<number> {
    return (await this.query<{ n: number }>('SELECT count(*)::int AS n FROM entities'))[0]!.n;
  }

  async getGroup(name: string): Promise<Group | undefined> {
    const [row] = await this.query<GroupRow>(`${GROUP_SELECT} WHERE name = $1`, [name]);
    return row && groupFrom(row);
  }

  async searchGroups(query: SearchQuery): Promise<Group[]> {
    const rows = await this.query<GroupRow>(
      `${GROUP_SELECT} WHERE name > $1 AND (name ILIKE $2 ESCAPE '\\' OR display_name ILIKE $2 ESCAPE '\\') ORDER BY name LIMIT $3`,
      [query.after ?? '', pattern(query), query.limit ?? DEFAULT_SEARCH_LIMIT],
    );
    return rows.map(groupFrom);
  }

  directMembers(group: string): Promise<string[]> {
    return this.names('SELECT entity_id AS name FROM memberships WHERE group_name = $1 ORDER BY entity_id', group);
  }

  groupsExpanding(group: string): Promise<string[]> {
    return this.names('SELECT group_name AS name FROM expansions WHERE target = $1 ORDER BY group_name', group);
  }

  groupsManagedBy(group: string): Promise<string[]> {
    return this.names('SELECT name FROM groups WHERE managed_by = $1 ORDER BY name', group);
  }

  async tokenGeneration(entityId: string): Promise<string | undefined> {
    return (await this.query<{ generation: string }>('SELECT generation FROM token_generations WHERE entity_id = $1', [entityId]))[0]
      ?.generation;
  }

  entitiesWithCapability(capability: Capability): Promise<string[]> {
    return this.names('SELECT entity_id AS name FROM entity_capabilities WHERE capability = $1 ORDER BY entity_id', capability);
  }

  groupsWithCapability(capability: Capability): Promise<string[]> {
    return this.names('SELECT group_name AS name FROM group_capabilities WHERE capability = $1 ORDER BY group_name', capability);
  }

  async version(subject: SubjectRef): Promise<number | undefined> {
    const sql = subject.kind === 'entity' ? 'SELECT version FROM entities WHERE id = $1' : 'SELECT version FROM groups WHERE name = $1';
    return (await this.query<{ version: number }>(sql, [subject.key]))[0]?.version;
  }

  nextNumber(kind: SubjectRef['kind']): Promise<number> {
    return numberFor(this.query, kind, 0);
  }

  async bootstrapRoot(): Promise<string | undefined> {
    return (await this.query<{ value: string }>("SELECT value FROM server_facts WHERE key = 'bootstrapRoot'"))[0]?.value;
  }

  async throttleRecords(keys: readonly string[]): Promise<ThrottleRecord[]> {
    const rows = await this.query<{ key: string; failures: number; last_failure: number; blocked_until: number }>(
      'SELECT key, failures, last_failure, blocked_until FROM login_throttle WHERE key = ANY($1::text[])',
      [keys],
    );
    // In the order of `keys`, as the SQLite store returns them.
    const byKey = new Map(rows.map((r) => [r.key, r]));
    return keys.flatMap((key) => {
      const row = byKey.get(key);
      return row ? [{ key, failures: row.failures, lastFailure: row.last_failure, blockedUntil: row.blocked_until }] : [];
    });
  }

  async lastLoginFrom(entityId: string, address: string): Promise<number | undefined> {
    return (
      await this.query<{ last_login: number }>('SELECT last_login FROM familiar_addresses WHERE entity_id = $1 AND address = $2', [
        entityId,
        address,
      ])
    )[0]?.last_login;
  }

  private async names(sql: string, key: string): Promise<string[]> {
    return (await this.query<{ name: string }>(sql, [key])).map((r) => r.name);
  }
}

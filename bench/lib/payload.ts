// The realistic entity the round-trip benchmarks send: 10 untyped meta entries, 5 groups, 2 keys.
import { parseEntity, type Entity } from 'keyhold-plugin-sdk';

export function realisticEntity(id = 'alice'): Entity {
  return parseEntity({
    id,
    number: 1042,
    meta: {
      displayName: 'Alice Example',
      legalName: 'Alice Q. Example',
      gecos: 'Alice Example,Room 101,555-0101',
      home: `/home/${id}`,
      shell: '/bin/bash',
      primaryGroup: 'staff',
      groups: ['staff', 'dev', 'ops', 'vpn', 'wiki'],
      capabilities: ['MODIFY_ENTITY_META'],
      keys: [
        'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1Zmx1Zmx1Zmx1Zmx1Zmx1Zmx1Zmx1Zmx1Zmx1Zmx1 alice@laptop',
        'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3 alice@desktop',
      ],
      untypedMeta: Array.from({ length: 10 }, (_, i) => `site-key-${i}:value number ${i} for ${id}`),
      kv: { phone: { values: ['555-0101'] } },
    },
  });
}
